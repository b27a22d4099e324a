"""Train the red-line text model for service calls and write its card.

Usage::

    python scripts/train_redline_model.py [--out models/redline_text] [--max-service-fp 0.0005]
        [--target-precision 0.83] [--reviewed STORE ...] [--no-save]

Data (every text in the model's form, :func:`pipeline.text.turns.model_form`: no punctuation,
您 written 你, as the pipeline scores a turn):

* COLD train (``../shared/data/text/cold/train.csv``, thu-coai, Apache-2.0): offensive = class
  ``abuse``, the rest ``clean``. COLD's test split is held out by its provider, so **dev is the
  test split**: never fitted on, never used to choose anything.
* callqa's labelled service lines (``lexicons/redline_train.tsv``, written for callqa): insult,
  counter-question, coldness, impatience, shirking and clean agent lines. About a quarter (by a
  hash of the text) is the **service test** part, never fitted on.
* CrossWOZ turns (``../shared/data/text/crosswoz/val_turns.tsv``, Apache-2.0): clean service
  replies (agent turns) and the polite questions customers ask a service desk (customer turns,
  which teach the model that "…吗" is not a counter-question). Only the ``train`` half of the
  dialogues is fitted on; the ``test`` half's agent turns measure false hits
  (:mod:`scripts.bench.service_text`).

* Reviewers' verdicts (``--reviewed STORE``, repeatable): the text around every agent hit of a class
  the model knows (red lines, shirking, arguing, contradicting) that a reviewer confirmed or rejected
  in ``callqa review`` (one verdict per hit: a lead's wins, then the latest), and every agent
  utterance a reviewer marked as a *missed* finding of such a class. A confirmed hit or a missed
  finding teaches its class, a rejected hit ``clean``; a text given both is left out. They are service lines (same
  weight, same ASR-like copies) and split by the same hash: the test quarter is scored apart as
  ``reviewed_test``, so the card's other figures stay comparable with a model trained without them.

Each service line and CrossWOZ turn is also trained on as Whisper might write it (``--augment``
copies): 您 heard as 你 and about one character in ten replaced by a toneless homophone (the two
most frequent confusions ``scripts/bench/asr_confusions.py`` measured on 8 kHz speech). With
``--features chars+sounds`` (the default) the model also reads each text's sound classes
(:func:`pipeline.text.redline_model.model_input`), so a homophone or near-homophone Whisper writes
shares features with the word said even when no augmented copy happened to hold it.

Service lines weigh ``--service-weight`` and CrossWOZ turns ``--crosswoz-weight`` times a COLD text,
on top of balanced class weights: COLD is 25,000 social-media comments, the service set a few hundred
lines. The threshold on P(red line) = 1 - P(clean) is chosen on 5-fold out-of-fold probabilities of
the training data: the lowest that keeps clean service texts (CrossWOZ train half + clean service
lines) flagged at most ``--max-service-fp`` of the time and COLD's precision at least
``--target-precision``.

Printed and written to the card: precision/recall on COLD dev, on the service test part (per
category) and negative hits per 1,000 CrossWOZ test turns. Reproducible: fixed seed, hashed
features, lbfgs; the card records the data files' hashes and a hash of the learned coefficients.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import precision_recall_fscore_support, roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.records import CUSTOMER  # noqa: E402
from pipeline.review.verdicts import chosen_hit_verdicts, current_missed  # noqa: E402
from pipeline.store.delta import Store, is_store  # noqa: E402
from pipeline.text.redline_model import (  # noqa: E402
    CATEGORY_OF_CLASS,
    CHARS_AND_SOUNDS,
    CLEAN,
    FEATURES,
    RedlineTextModel,
    build_pipeline,
    model_input,
)
from pipeline.text.turns import model_form  # noqa: E402
from scripts.bench.service_text import CROSSWOZ, DATA, crosswoz_turns  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SERVICE = REPO / "lexicons" / "redline_train.tsv"
#: The class a confirmed hit of each category teaches (a rejected one teaches ``clean``).
CLASS_OF_CATEGORY = {"redline_abuse": "abuse", "redline_counter_question": "counter_question",
                     "redline_coldness": "coldness", "shirking": "shirking", "arguing": "arguing",
                     "contradicting": "contradicting"}
REVIEWED = "service.reviewed"  # the source name of reviewed texts (a kind of service line)


def service_split(text: str) -> str:
    """``test`` for about a quarter of the service lines (a hash of the text), else ``train``."""
    return "test" if hashlib.sha256(text.encode()).digest()[0] % 4 == 0 else "train"


def load_service(path: Path = SERVICE) -> pd.DataFrame:
    """The labelled service lines with columns label, text, split (see the module docstring)."""
    frame = pd.read_csv(path, sep="\t", comment="#", dtype=str)
    frame["split"] = [service_split(t) for t in frame["text"]]
    return frame


def labelled_hits(hits: Sequence[Mapping[str, Any]], verdicts: Sequence[Mapping[str, Any]],
                  missed: Sequence[Mapping[str, Any]] = ()) -> pd.DataFrame:
    """Service lines from reviewers' verdicts (pure; see the module docstring).

    Args:
        hits: stored hit rows (``hit_id``, ``category``, ``role``, ``context``).
        verdicts: one verdict row per hit (``hit_id``, ``verdict``), as
            :func:`pipeline.review.verdicts.chosen_hit_verdicts` gives them.
        missed: findings reviewers marked as missed (``text``, ``category``), as
            :func:`pipeline.review.verdicts.current_missed` gives them: each teaches its category's class.

    Returns:
        Columns label, text (model form), split, hits (how many verdicts gave the text its label);
        texts whose verdicts disagree are left out.
    """
    verdict_of = {v["hit_id"]: v["verdict"] for v in verdicts if v["verdict"] in ("confirmed", "rejected")}
    labels: dict[str, list[str]] = {}
    for hit in hits:
        verdict = verdict_of.get(hit["hit_id"])
        category_class = CLASS_OF_CATEGORY.get(hit["category"])
        text = model_form(hit.get("context") or "")
        if verdict is None or category_class is None or hit["role"] == CUSTOMER or not text:
            continue
        labels.setdefault(text, []).append(category_class if verdict == "confirmed" else CLEAN)
    for finding in missed:
        text = model_form(finding["text"] or "")
        if text and finding["category"] in CLASS_OF_CATEGORY:
            labels.setdefault(text, []).append(CLASS_OF_CATEGORY[finding["category"]])
    rows = [(given[0], text, service_split(text), len(given)) for text, given in sorted(labels.items())
            if len(set(given)) == 1]
    return pd.DataFrame(rows, columns=["label", "text", "split", "hits"])


def reviewed_lines(stores: Sequence[Path]) -> tuple[pd.DataFrame, dict[str, Any]]:
    """:func:`labelled_hits` of every store's hits and verdicts, and what the card records of them."""
    frames, verdict_count, missed_count = [], 0, 0
    for root in stores:
        verdicts = chosen_hit_verdicts(root).to_pylist()
        # one finding per utterance and category, whoever marked it
        missed = list({(m["call_id"], m["utterance_index"], m["category"]): m
                       for m in current_missed(root).to_pylist()}.values())
        verdict_count, missed_count = verdict_count + len(verdicts), missed_count + len(missed)
        hits = (Store(root).read("hits", ["hit_id", "category", "role", "context"],
                                 call_ids=sorted({v["call_id"] for v in verdicts})).to_pylist() if verdicts else [])
        frames.append(labelled_hits(hits, verdicts, missed))
    frame = (pd.concat(frames, ignore_index=True) if frames
             else pd.DataFrame(columns=["label", "text", "split", "hits"]))
    if len(frame):  # the same text judged in two stores: kept once, if they agree
        agreed = frame.groupby("text")["label"].transform("nunique") == 1
        frame = frame[agreed].drop_duplicates("text").sort_values("text", ignore_index=True)
    digest = hashlib.sha256("".join(f"{t}\t{label}\n" for t, label in zip(frame["text"], frame["label"],
                                                                             strict=True)).encode())
    card = {"stores": [str(s) for s in stores], "hit_verdicts": verdict_count, "missed_findings": missed_count,
            "texts": len(frame),
            "labels": {str(k): int(v) for k, v in frame["label"].value_counts().items()},
            "texts_sha256": digest.hexdigest()[:16]}
    return frame, card


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _prf(truth: np.ndarray, flagged: np.ndarray) -> dict[str, float]:
    precision, recall, f1, _ = precision_recall_fscore_support(truth, flagged, average="binary", zero_division=0)
    return {"precision": round(float(precision), 4), "recall": round(float(recall), 4), "f1": round(float(f1), 4),
            "flagged": int(flagged.sum()), "n": int(len(truth)), "positives": int(truth.sum())}


def training_frame(cold: pd.DataFrame, service: pd.DataFrame, crosswoz: list[str], service_weight: float,
                   crosswoz_weight: float, reviewed: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every training text with its class, source and sample weight (reviewed texts weigh as service lines)."""
    parts = [
        pd.DataFrame({"text": cold["TEXT"], "label": np.where(cold["label"] == 1, "abuse", CLEAN), "source": "cold",
                      "weight": 1.0}),
        pd.DataFrame({"text": service["text"], "label": service["label"], "source": "service",
                      "weight": service_weight}),
        pd.DataFrame({"text": crosswoz, "label": CLEAN, "source": "crosswoz", "weight": crosswoz_weight}),
    ]
    if reviewed is not None and len(reviewed):
        parts.append(pd.DataFrame({"text": reviewed["text"], "label": reviewed["label"], "source": REVIEWED,
                                   "weight": service_weight}))
    frame = pd.concat(parts, ignore_index=True)
    frame["text"] = [model_form(str(t)) for t in frame["text"]]
    frame = frame[frame["text"].str.len() > 0].reset_index(drop=True)
    frame["group"] = np.arange(len(frame))  # a text and its ASR-like copies stay in one fold
    return frame


def homophones(texts: list[str], min_count: int = 20) -> dict[str, list[str]]:
    """Characters seen at least ``min_count`` times, grouped by toneless pinyin (char -> its homophones)."""
    from collections import Counter

    from pipeline.text.fuzzy import syllables

    counts = Counter(ch for text in texts for ch in text if "\u4e00" <= ch <= "\u9fff")
    cache: dict[str, str] = {}
    groups: dict[str, list[str]] = {}
    for ch, n in counts.items():
        if n >= min_count:
            groups.setdefault(syllables(ch, cache)[0], []).append(ch)
    return {ch: [o for o in group if o != ch] for group in groups.values() for ch in group if len(group) > 1}


def asr_copies(frame: pd.DataFrame, table: dict[str, list[str]], copies: int, rate: float,
               seed: int) -> pd.DataFrame:
    """Noisy copies of the service and CrossWOZ rows: 您 as 你, homophones at ``rate`` per character."""
    rng = np.random.default_rng(seed)
    rows = frame[frame["source"] != "cold"]
    out = []
    for _ in range(copies):
        for text, label, source, weight, group in rows[["text", "label", "source", "weight", "group"]].itertuples(
                index=False):
            noisy = "".join(rng.choice(table[ch]) if ch in table and rng.random() < rate else ch
                            for ch in text.replace("您", "你"))
            if noisy != text:
                out.append((noisy, label, f"{source}+asr", weight, group))
    columns = ["text", "label", "source", "weight", "group"]
    return pd.concat([frame, pd.DataFrame(out, columns=columns)], ignore_index=True)


def _balanced(labels: pd.Series) -> np.ndarray:
    counts = labels.value_counts()
    return labels.map(lambda c: len(labels) / (len(counts) * counts[c])).to_numpy()


def fit(frame: pd.DataFrame, seed: int, c: float, n_features: int, features: str) -> Any:
    """Fit the pipeline on ``frame`` (balanced class weights times the source weights)."""
    weights = _balanced(frame["label"]) * frame["weight"].to_numpy()
    pipeline = build_pipeline(seed, c=c, n_features=n_features, class_weight=None)
    return pipeline.fit([model_input(t, features) for t in frame["text"]], frame["label"],
                        model__sample_weight=weights)


def red_probability(pipeline: Any, texts: list[str], features: str) -> np.ndarray:
    """P(red line) = 1 - P(clean), read as the pipeline reads it (:meth:`RedlineTextModel.predict_proba`)."""
    return RedlineTextModel(pipeline, 0.0, {"features": features}).predict_proba(texts)


def out_of_fold(frame: pd.DataFrame, seed: int, c: float, n_features: int, features: str) -> np.ndarray:
    """P(red line) of every training text from a model that did not see it (5 folds)."""
    oof = np.zeros(len(frame))
    folds = StratifiedGroupKFold(5, shuffle=True, random_state=seed)
    # stratified by class and source; reviewed texts go with the service lines (too few for strata of their own)
    strata = frame["label"] + frame["source"].str.replace("." + REVIEWED.split(".")[1], "", regex=False)
    for train_index, test_index in folds.split(frame["text"], strata, frame["group"]):
        model = fit(frame.iloc[train_index], seed, c, n_features, features)
        oof[test_index] = red_probability(model, frame["text"].iloc[test_index].tolist(), features)
    return oof


def choose_threshold(frame: pd.DataFrame, oof: np.ndarray, max_service_fp: float, target_precision: float,
                     min_chars: int) -> float:
    """The lowest threshold meeting both limits (see the module docstring).

    Clean service texts shorter than ``min_chars`` are left out (the pipeline never scores them),
    and so are the ASR-like copies (the limit is about real service text).
    """
    scored = (frame["text"].str.len() >= min_chars).to_numpy()
    original = ~frame["source"].str.endswith("+asr").to_numpy()
    clean_service = oof[(frame["label"] == CLEAN).to_numpy() & (frame["source"] != "cold").to_numpy() & scored
                        & original]
    cold = (frame["source"] == "cold").to_numpy()
    cold_truth = (frame["label"] != CLEAN).to_numpy()[cold]
    for t in np.unique(np.round(oof, 4)):
        if np.mean(clean_service >= t) > max_service_fp:
            continue
        flagged = oof[cold] >= t
        if flagged.sum() and (flagged & cold_truth).sum() / flagged.sum() >= target_precision:
            return float(t)
    return float(np.max(oof))


def tradeoff(frame: pd.DataFrame, oof: np.ndarray, min_chars: int) -> list[dict[str, float]]:
    """Out-of-fold figures at a few thresholds (printed, and kept in the card)."""
    scored = (frame["text"].str.len() >= min_chars).to_numpy()
    clean = (frame["label"] == CLEAN).to_numpy() & scored
    original = ~frame["source"].str.endswith("+asr").to_numpy()
    service = frame["source"].str.startswith(("service", "crosswoz")).to_numpy()
    cold = (frame["source"] == "cold").to_numpy()
    hostile = ~(frame["label"] == CLEAN).to_numpy()
    rows = []
    for t in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9):
        flagged = oof >= t
        rows.append({
            "threshold": t,
            "clean_service_per_1000": round(1000 * float(flagged[clean & service & original].mean()), 2),
            "clean_service_asr_copies_per_1000": round(1000 * float(flagged[clean & service & ~original].mean()), 2),
            "service_recall": round(float(flagged[hostile & service & original].mean()), 3),
            "service_recall_asr_copies": round(float(flagged[hostile & service & ~original].mean()), 3),
            "cold_precision": round(float((flagged & cold & hostile).sum() / max(1, (flagged & cold).sum())), 3),
            "cold_recall": round(float(flagged[cold & hostile].mean()), 3),
        })
    return rows


def service_figures(pipeline: Any, threshold: float, lines: pd.DataFrame, features: str) -> dict[str, Any]:
    """Precision / recall on labelled service lines (columns label, text), and recall per hostile class."""
    probability = red_probability(pipeline, [model_form(t) for t in lines["text"]], features)
    by_class = {}
    for label in sorted(set(lines["label"]) - {CLEAN}):
        chosen = (lines["label"] == label).to_numpy()
        by_class[label] = {"n": int(chosen.sum()),
                           "recall": round(float(np.mean(probability[chosen] >= threshold)), 4)}
    return {**_prf((lines["label"] != CLEAN).to_numpy(), probability >= threshold), "by_class": by_class}


def evaluate(pipeline: Any, threshold: float, cold_dev: pd.DataFrame, service_test: pd.DataFrame,
             crosswoz_test: list[str], features: str) -> dict[str, Any]:
    """Figures on the three held-out sets (see the module docstring)."""
    cold_texts = [model_form(str(t)) for t in cold_dev["TEXT"]]
    cold_p = red_probability(pipeline, cold_texts, features)
    cold_truth = cold_dev["label"].to_numpy() == 1
    crosswoz_p = red_probability(pipeline, [model_form(t) for t in crosswoz_test], features)
    return {
        "cold_dev": {**_prf(cold_truth, cold_p >= threshold), "roc_auc": round(float(roc_auc_score(cold_truth, cold_p)),
                                                                                 4)},
        "service_test": service_figures(pipeline, threshold, service_test, features),
        "crosswoz_test": {"turns": len(crosswoz_test), "flagged": int(np.sum(crosswoz_p >= threshold)),
                          "per_1000": round(1000 * float(np.mean(crosswoz_p >= threshold)), 2)},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", type=Path, default=DATA / "cold" / "train.csv")
    parser.add_argument("--dev", type=Path, default=DATA / "cold" / "dev.csv")
    parser.add_argument("--service", type=Path, default=SERVICE)
    parser.add_argument("--out", type=Path, default=REPO / "models" / "redline_text")
    parser.add_argument("--max-service-fp", type=float, default=0.001)
    # 0.83 (was 0.85): with the arguing and contradicting classes, 0.85 raised the threshold from 0.58
    # to 0.63 and lost spoken recall on the benchmark's dev split (0.869 -> 0.847, red-line calls
    # flagged 48 -> 46 of 51) at equal clean-service false hits; chosen on dev, never on held-out.
    parser.add_argument("--target-precision", type=float, default=0.83)
    parser.add_argument("--service-weight", type=float, default=20.0)
    parser.add_argument("--crosswoz-weight", type=float, default=10.0)
    parser.add_argument("--c", type=float, default=4.0)
    parser.add_argument("--n-features", type=int, default=2**16)
    parser.add_argument("--features", choices=FEATURES, default=CHARS_AND_SOUNDS,
                        help="what the model reads: a turn's characters, or its characters and their sound classes "
                             "(toneless pinyin with Whisper's confusions merged; default)")
    parser.add_argument("--min-chars", type=int, default=4, help="[classifier] redline_min_chars")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--augment", type=int, default=1, help="ASR-like copies of each service text")
    parser.add_argument("--augment-rate", type=float, default=0.1)
    parser.add_argument("--reviewed", type=Path, action="append", default=[], metavar="STORE",
                        help="also learn from the reviewers' verdicts on this store's hits (repeatable): a confirmed "
                             "hit's text teaches its class, a rejected one clean")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args(argv)
    for root in args.reviewed:
        if not is_store(root):
            print(f"--reviewed {root}: not a callqa store", file=sys.stderr)
            return 2
    if not args.train.exists() or not args.dev.exists() or not CROSSWOZ.exists():
        print(f"COLD or CrossWOZ not found under {DATA} (needs ../shared/data/text)", file=sys.stderr)
        return 2
    cold, cold_dev = pd.read_csv(args.train), pd.read_csv(args.dev)
    service = load_service(args.service)
    turns = crosswoz_turns()
    clean_service = [t.text for t in turns + crosswoz_turns(role="customer") if t.split == "train"]
    reviewed, reviewed_card = reviewed_lines(args.reviewed)
    if args.reviewed:
        print(f"reviewed: {reviewed_card['hit_verdicts']} hit verdicts and {reviewed_card['missed_findings']} "
              f"missed findings in {len(args.reviewed)} store(s) give "
              f"{len(reviewed)} labelled texts {reviewed_card['labels']} "
              f"({int((reviewed['split'] == 'test').sum())} in the test quarter)")
    frame = training_frame(cold, service[service["split"] == "train"], clean_service, args.service_weight,
                           args.crosswoz_weight, reviewed[reviewed["split"] == "train"])
    if args.augment:
        frame = asr_copies(frame, homophones(frame["text"].tolist()), args.augment, args.augment_rate, args.seed)
    started = time.perf_counter()
    with threadpool_limits(1):
        oof = out_of_fold(frame, args.seed, args.c, args.n_features, args.features)
        threshold = choose_threshold(frame, oof, args.max_service_fp, args.target_precision, args.min_chars)
        curve = tradeoff(frame, oof, args.min_chars)
        pipeline = fit(frame, args.seed, args.c, args.n_features, args.features)
        results = evaluate(pipeline, threshold, cold_dev, service[service["split"] == "test"],
                           [t.text for t in turns if t.split == "test"], args.features)
        reviewed_test = reviewed[reviewed["split"] == "test"]
        if len(reviewed_test):
            results["reviewed_test"] = service_figures(pipeline, threshold, reviewed_test, args.features)
    fit_s = time.perf_counter() - started
    classes = [str(c) for c in pipeline.classes_]
    coef = pipeline.named_steps["model"].coef_
    card = {
        "name": "redline_text", "rule_id": "model.redline_text",
        "classes": classes, "categories": {c: CATEGORY_OF_CLASS.get(c, "") for c in classes if c != CLEAN},
        "input": "one agent turn (consecutive utterances), matching form: Simplified, lower case, no punctuation"
                 + ("; then a space and the sound class of every Chinese character (one Private Use Area character "
                    "per class: pipeline.text.redline_model.model_input)" if args.features == CHARS_AND_SOUNDS else ""),
        "features": args.features,
        "data": {
            "cold_train": args.train.name, "cold_train_sha256": _sha(args.train), "cold_dev": args.dev.name,
            "cold_dev_sha256": _sha(args.dev), "service": args.service.name, "service_sha256": _sha(args.service),
            "crosswoz": CROSSWOZ.name, "crosswoz_sha256": _sha(CROSSWOZ),
            **({"reviewed": reviewed_card} if args.reviewed else {}),
            "n_train": {str(k): int(v) for k, v in frame.groupby("source").size().items()},
            "label_distribution_train": {str(k): int(v) for k, v in frame["label"].value_counts().items()},
            "held_out": "COLD dev (COLD's test split is held out by its provider), the service lines whose text "
                        "hashes to the test quarter, the CrossWOZ dialogues of the test half",
        },
        "pipeline": f"HashingVectorizer(char 1-3 of the input, {args.n_features}) + TfidfTransformer(sublinear) + "
                    "multinomial "
                    f"LogisticRegression(C={args.c}), balanced class weights x source weights "
                    f"(service {args.service_weight}, CrossWOZ {args.crosswoz_weight}, COLD 1)",
        "seed": args.seed, "threshold_rule": f"lowest threshold on 5-fold out-of-fold P(red line) with clean service "
                                            f"texts flagged <= {args.max_service_fp} and COLD precision >= "
                                            f"{args.target_precision}",
        "results": results, "out_of_fold_tradeoff": curve,
        "coef_sha256": hashlib.sha256(np.round(coef, 10).tobytes()).hexdigest()[:16],
        "limitations": "Written text: the spoken figures (through Whisper) are in docs/redlines.md "
                       "(scripts/bench/spoken_eval.py). The service lines were written by callqa's engineers, "
                       "one style; COLD is social-media text; CrossWOZ is a travel desk.",
    }
    print(f"red-line text model: trained in {fit_s:.0f} s, threshold {threshold:.4f}, classes {classes}")
    print("out of fold: " + "\n             ".join(" ".join(f"{k} {v}" for k, v in row.items()) for row in curve))
    for name in ("cold_dev", "service_test", "reviewed_test"):
        if name not in results:
            continue
        row = results[name]
        print(f"{name:<14} precision {row['precision']:.3f}  recall {row['recall']:.3f}  (n {row['n']}, "
              f"positives {row['positives']}, flagged {row['flagged']})")
    print("service test recall by class: " + ", ".join(f"{k} {v['recall']:.2f} (n {v['n']})"
                                                        for k, v in results["service_test"]["by_class"].items()))
    cw = results["crosswoz_test"]
    print(f"crosswoz_test  {cw['flagged']} of {cw['turns']} agent turns flagged = {cw['per_1000']} per 1,000")
    if not args.no_save:
        out = RedlineTextModel(pipeline, float(threshold), card).save(args.out)
        size_mb = sum(p.stat().st_size for p in out.iterdir()) / 1e6
        print(f"saved {out} ({size_mb:.1f} MB), coef hash {card['coef_sha256']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
