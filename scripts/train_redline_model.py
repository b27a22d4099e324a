"""Train the red-line text model on COLD and compare it with lexicon rules.

Usage::

    python scripts/train_redline_model.py [--out models/redline_text] [--target-precision 0.9]
        [--lexicon FILE ...] [--no-save]

Data: ``../shared/data/text/cold/{train,dev}.csv`` (COLD, Apache-2.0). COLD's
test split is held out by its provider, so **dev is used as the test split**:
it is never used for fitting or for choosing the threshold (that comes from
5-fold out-of-fold predictions on train, for the target precision).

Printed: precision / recall / F1 on dev for the lexicon rules alone, the
model alone and both combined (a text is flagged if either flags it). The
lexicon baseline is the red-line abuse phrases from ``--lexicon`` files
(``.txt``: one phrase a line; ``.toml``: string lists of every rule table
whose ``category`` is ``redline_abuse``); by default the shipped rule sets
in ``lexicons/`` plus DOMAIN.md's abuse seeds plus the LDNOOBW zh list in
``../shared/data/text/profanity_zh/words.txt`` (read, never shipped).

Reproducible: fixed seed, hashed features (no vocabulary order), lbfgs; the
card records the data files' hashes and a hash of the learned coefficients.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import tomllib
from sklearn.metrics import precision_recall_fscore_support, roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from threadpoolctl import threadpool_limits

from pipeline.scoring.train import choose_threshold
from pipeline.text.redline_model import RedlineTextModel, build_pipeline

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "text"
#: Abuse phrases quoted in DOMAIN.md §3/§4b (the red-line seeds).
DOMAIN_ABUSE_SEEDS = ("你去死", "神经病", "你才聋了", "你有嘴巴放干净一点", "你耳朵聋啦", "你脑子进水啦")


def _strings_in(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for v in value for s in _strings_in(v)]
    return []


def _toml_abuse_phrases(data: Any) -> list[str]:
    phrases: list[str] = []
    if isinstance(data, dict):
        if data.get("category") == "redline_abuse":
            phrases += [s for key, v in data.items() if isinstance(v, list) and key != "roles"
                        for s in _strings_in(v)]
        for value in data.values():
            phrases += _toml_abuse_phrases(value)
    elif isinstance(data, list):
        for value in data:
            phrases += _toml_abuse_phrases(value)
    return phrases


def lexicon_phrases(paths: list[Path]) -> list[str]:
    """Red-line abuse phrases from .txt and .toml files (blank lines and # comments skipped)."""
    phrases: list[str] = []
    for path in paths:
        if path.suffix == ".toml":
            phrases += _toml_abuse_phrases(tomllib.loads(path.read_text(encoding="utf-8")))
        else:
            phrases += [line.strip() for line in path.read_text(encoding="utf-8").splitlines()
                        if line.strip() and not line.startswith("#")]
    return sorted({p for p in phrases if len(p) >= 2} | set(DOMAIN_ABUSE_SEEDS))


def lexicon_flags(texts: pd.Series, phrases: list[str]) -> np.ndarray:
    return np.array([any(p in text for p in phrases) for text in texts])


def _prf(truth: np.ndarray, flagged: np.ndarray) -> dict[str, float]:
    precision, recall, f1, _ = precision_recall_fscore_support(truth, flagged, average="binary", zero_division=0)
    return {"precision": round(float(precision), 4), "recall": round(float(recall), 4), "f1": round(float(f1), 4),
            "flagged": int(flagged.sum())}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", type=Path, default=DATA / "cold" / "train.csv")
    parser.add_argument("--dev", type=Path, default=DATA / "cold" / "dev.csv")
    parser.add_argument("--out", type=Path, default=REPO / "models" / "redline_text")
    parser.add_argument("--target-precision", type=float, default=0.9)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lexicon", type=Path, action="append", default=None)
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args(argv)
    if not args.train.exists() or not args.dev.exists():
        print(f"COLD not found at {args.train.parent} (needs ../shared/data/text/cold)", file=sys.stderr)
        return 2
    lexicons = args.lexicon
    if lexicons is None:
        lexicons = sorted((REPO / "lexicons").glob("*.toml"))
        if (DATA / "profanity_zh" / "words.txt").exists():
            lexicons.append(DATA / "profanity_zh" / "words.txt")
    train, dev = pd.read_csv(args.train), pd.read_csv(args.dev)
    started = time.perf_counter()
    with threadpool_limits(1):
        folds = StratifiedKFold(5, shuffle=True, random_state=args.seed)
        oof = cross_val_predict(build_pipeline(args.seed), train["TEXT"], train["label"], cv=folds,
                                method="predict_proba")[:, 1]
        threshold = choose_threshold(train["label"].to_numpy(), oof, target_precision=args.target_precision)
        pipeline = build_pipeline(args.seed).fit(train["TEXT"], train["label"])
        probability = pipeline.predict_proba(dev["TEXT"])[:, 1]
    fit_s = time.perf_counter() - started
    truth = dev["label"].to_numpy() == 1
    phrases = lexicon_phrases(lexicons)
    lexicon = lexicon_flags(dev["TEXT"], phrases)
    model = probability >= threshold
    results = {"lexicon_only": _prf(truth, lexicon), "model_only": _prf(truth, model),
               "combined_or": _prf(truth, lexicon | model)}
    coef = pipeline.named_steps["model"].coef_
    card = {
        "name": "redline_text", "rule_id": "model.redline_text", "category": "redline_abuse",
        "data": {"train": str(args.train.name), "train_sha256": _sha(args.train), "n_train": len(train),
                 "dev": str(args.dev.name), "dev_sha256": _sha(args.dev), "n_dev": len(dev),
                 "label_distribution_train": {str(k): int(v) for k, v in train["label"].value_counts().items()},
                 "note": "COLD's test split is held out; dev is used as the test split (never fitted on)."},
        "pipeline": "HashingVectorizer(char 1-3, 2^18) + TfidfTransformer(sublinear) + "
                    "LogisticRegression(C=4, balanced)",
        "seed": args.seed, "target_precision": args.target_precision,
        "threshold_source": "5-fold out-of-fold probabilities on train",
        "dev_roc_auc": round(float(roc_auc_score(truth, probability)), 4), "dev_results": results,
        "lexicon_files": [p.name for p in lexicons], "lexicon_phrases": len(phrases),
        "coef_sha256": hashlib.sha256(np.round(coef, 10).tobytes()).hexdigest()[:16],
        "limitations": "COLD is social-media text about race, region and gender, not contact-centre speech; "
                       "recall on call transcripts is unmeasured (no labelled calls yet).",
    }
    print(f"red-line text model: trained in {fit_s:.1f} s, threshold {threshold:.3f} "
          f"(target precision {args.target_precision} on train OOF), dev ROC-AUC {card['dev_roc_auc']}")
    print(f"lexicon: {len(phrases)} phrases from {', '.join(card['lexicon_files']) or 'DOMAIN seeds only'}")
    print(f"{'dev (test split)':<16} {'precision':>9} {'recall':>7} {'F1':>6} {'flagged':>8}")
    for name, row in results.items():
        print(f"{name:<16} {row['precision']:>9.3f} {row['recall']:>7.3f} {row['f1']:>6.3f} {row['flagged']:>8}")
    if not args.no_save:
        out = RedlineTextModel(pipeline, float(threshold), card).save(args.out)
        size_mb = sum(p.stat().st_size for p in out.iterdir()) / 1e6
        print(f"saved {out} ({size_mb:.1f} MB), coef hash {card['coef_sha256']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
