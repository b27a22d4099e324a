"""Precision and recall of the red-line / insult rules.

1. On COLD dev (``../shared/data/text/cold/dev.csv``, thu-coai, Apache-2.0): every text is
   treated as one agent utterance; a "positive" prediction is any hit in a red-line category
   (REDLINE_CATEGORIES). COLD's offensive label covers much more than spoken insults (racism,
   sexism, region bias in social-media comments), so recall here is a lower bound; precision
   is what matters for trust. Baseline printed in the same run: the raw LDNOOBW word list
   matched as plain substrings (no curation, no token boundaries).
2. On the rules' own examples (every red-line rule's examples_match / examples_no_match).
3. On clean service text: negative hits (any negative category, lexicon rules and the
   red-line text model as configured) per 1,000 CrossWOZ agent turns, on the held-out
   ``test`` half of the dialogues (the ``train`` half may be used to tune rules and train the
   model; :mod:`scripts.bench.service_text`). Goal (issue 15): <= 1 per 1,000.
4. On clean probes (``tests/data/clean_probes.txt``): ordinary agent sentences that hold a
   word or a sound of a rude phrase (十三点 the time, 有害废物, 您等不等一下), the kind
   CrossWOZ lacks; every negative hit on them is printed. Goal: none.

    python scripts/bench/lexicon_eval.py [--rules DIR] [--limit N] [--crosswoz-only] [--show]
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pipeline.analysis import Resources, text_hits  # noqa: E402
from pipeline.config import TextConfig, default_config  # noqa: E402
from pipeline.records import AGENT, CUSTOMER, REDLINE_CATEGORIES  # noqa: E402
from pipeline.text.matcher import LexiconMatcher, build_matcher, detect_phrases, example_evidence  # noqa: E402
from pipeline.text.rules import load_rules  # noqa: E402
from scripts.bench.service_text import DATA, clean_probes, crosswoz_turns, false_hits  # noqa: E402


def prf(pred: list[bool], gold: list[bool]) -> tuple[float, float, float, int, int, int]:
    tp = sum(p and g for p, g in zip(pred, gold, strict=True))
    fp = sum(p and not g for p, g in zip(pred, gold, strict=True))
    fn = sum(g and not p for p, g in zip(pred, gold, strict=True))
    precision = tp / (tp + fp) if tp + fp else float("nan")
    recall = tp / (tp + fn) if tp + fn else float("nan")
    return precision, recall, 0.0, tp, fp, fn


def _flagger(matcher: LexiconMatcher, cfg: TextConfig, red_ids: set[str]) -> Callable[..., bool]:
    def flagged(text: str, role: str = AGENT) -> bool:
        return any(h.rule_id in red_ids and h.match_type != "absence"
                   for h in detect_phrases(example_evidence(text, role), matcher, cfg))
    return flagged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rules", default="callqa:lexicons", help="Rules directory (default: the shipped ones).")
    parser.add_argument("--limit", type=int, default=0, help="only the first N COLD rows (0 = all)")
    parser.add_argument("--no-fuzzy", action="store_true")
    parser.add_argument("--crosswoz-only", action="store_true", help="only the clean service text (3. and 4.)")
    parser.add_argument("--show", action="store_true", help="print every false hit on CrossWOZ")
    args = parser.parse_args()
    both, lexicon = _resources(args.rules)
    crosswoz(both, lexicon, args.show)
    probes(both, lexicon)
    if args.crosswoz_only:
        return
    rules = load_rules(args.rules)
    red_ids = {r.id for r in rules.rules if r.category in REDLINE_CATEGORIES}
    print(f"rules {rules.version}: {len(red_ids)} red-line rules")
    configs = [("exact only", False)] + ([] if args.no_fuzzy else [("exact + pinyin fuzzy", True)])
    flaggers = {}
    for name, fuzzy in configs:
        cfg = default_config().text.model_copy(update={"fuzzy": fuzzy})
        flaggers[name] = _flagger(build_matcher(rules, cfg), cfg, red_ids)
    flagged = flaggers[configs[-1][0]]
    cold = DATA / "cold" / "dev.csv"
    if cold.exists():
        with cold.open(encoding="utf-8-sig") as f:
            rows = list(csv.DictReader(f))
        if args.limit:
            rows = rows[: args.limit]
        gold = [r["label"] == "1" for r in rows]
        words = [w.strip() for w in (DATA / "profanity_zh" / "words.txt").read_text(encoding="utf-8").splitlines()
                 if w.strip()]
        preds = {"raw LDNOOBW substring (baseline)": [any(w in r["TEXT"] for w in words) for r in rows]}
        for name, flag in flaggers.items():
            preds[f"callqa red-line, {name}"] = [flag(r["TEXT"]) for r in rows]
        print(f"COLD dev: {len(rows)} texts, {sum(gold)} offensive")
        for name, p in preds.items():
            precision, recall, _, tp, fp, fn = prf(p, gold)
            print(f"  {name:38s} precision {precision:.3f}  recall {recall:.3f}  (tp {tp} fp {fp} fn {fn})")
    else:
        print(f"COLD dev not found at {cold}; skipped")
    pred, gold = [], []
    for rule in rules.rules:
        if rule.id not in red_ids:
            continue
        role = CUSTOMER if rule.role == CUSTOMER else AGENT
        for text in rule.examples_match:
            pred.append(flagged(text, role))
            gold.append(True)
        for text in rule.examples_no_match:
            pred.append(flagged(text, role))
            gold.append(False)
    precision, recall, _, tp, fp, fn = prf(pred, gold)
    print(f"rule examples: {len(gold)}  precision {precision:.3f}  recall {recall:.3f}  (tp {tp} fp {fp} fn {fn})")


def _resources(rules_dir: str) -> tuple[Resources, Resources]:
    """The text detectors with the red-line model as configured, and the lexicon rules alone."""
    config = default_config().with_overrides({"text": {"rules_dir": rules_dir}})
    both = Resources.load(config, transcriber=None, text=True)
    lexicon = Resources.load(config.with_overrides({"classifier": {"redline_model": "off"}}), transcriber=None,
                             text=True)
    return both, lexicon


def probes(both: Resources, lexicon: Resources) -> dict[str, int]:
    """Clean probe sentences with a negative hit, lexicon alone and with the red-line model; prints each hit."""
    texts = clean_probes()
    figures = {}
    for name, resources in (("lexicon rules", lexicon), ("lexicon + red-line model", both)):
        found = false_hits(texts, lambda evidence, r=resources: text_hits(evidence, r))
        figures[name] = len({text for text, _ in found})
        print(f"clean probes ({len(texts)} sentences), {name:<25}: {figures[name]} with a negative hit (goal 0)")
        for text, hit in found:
            print(f"    {hit.rule_id} {hit.matched_text!r} in {text}")
    return figures


def crosswoz(both: Resources, lexicon: Resources, show: bool) -> dict[str, dict[str, float]]:
    """Negative hits per 1,000 CrossWOZ agent turns, lexicon alone and with the red-line model, per split."""
    turns = crosswoz_turns()
    if not turns:
        print("CrossWOZ not found; skipped")
        return {}
    figures: dict[str, dict[str, float]] = {}
    for split in ("train", "test"):
        texts = [t.text for t in turns if t.split == split]
        for name, resources in (("lexicon rules", lexicon), ("lexicon + red-line model", both)):
            found = false_hits(texts, lambda evidence, r=resources: text_hits(evidence, r))
            rate = 1000 * len({text for text, _ in found}) / len(texts)
            figures.setdefault(split, {})[name] = round(rate, 2)
            rules = Counter(hit.rule_id for _, hit in found)
            print(f"CrossWOZ {split:<5} ({len(texts)} agent turns), {name:<25}: {rate:5.2f} turns with a negative "
                  f"hit per 1,000 {dict(rules)}")
            if show:
                for text, hit in found:
                    print(f"    {hit.rule_id} {hit.matched_text!r} in {text}")
    return figures


if __name__ == "__main__":
    main()
