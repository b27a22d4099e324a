"""Throughput of segmentation + all text detectors (calls/s on one core).

Builds ``--calls`` realistic 5-minute two-party transcripts (about 70 turns, ~1,400
characters, word timestamps per 1-3 characters) from customer-service sentences,
then runs :func:`pipeline.text.matcher.detect_phrases` on each, single-threaded.
Prints calls/s, the share of time in jieba segmentation vs normalisation+matching, and
the ratio to a baseline measured in the same run (the same calls, fuzzy matching off).
Goal (issue 5): >= 300 calls/s per core.

    python scripts/bench/text_throughput.py --calls 1000
"""

from __future__ import annotations

import argparse
import random
import time

from pipeline.config import TextConfig, default_config
from pipeline.records import AGENT, CUSTOMER, CallEvidence, Utterance, Word
from pipeline.text.matcher import LexiconMatcher, build_matcher, detect_phrases
from pipeline.text.rules import load_rules

AGENT_LINES = [
    "您好很高兴为您服务请问有什么可以帮您", "请您稍等我帮您查询一下", "好的我这边已经帮您登记了",
    "这个问题我不清楚我帮您确认一下", "非常抱歉给您添麻烦了", "您的订单已经发货预计明天送达",
    "请问您的手机号码是多少", "这个我们需要核实一下您的身份", "对不起让您久等了", "嗯这个啊我看一下",
    "您反馈的问题我们会在二十四小时内回复您", "还有其他可以帮您的吗", "感谢您的来电祝您生活愉快再见",
    "那个您说的是哪一个套餐呢", "这边帮您申请退款三到五个工作日到账",
]
CUSTOMER_LINES = [
    "我想查一下我的话费", "你们这个宽带怎么老是断网", "我上个月被多扣了二十块钱", "好的谢谢",
    "嗯对", "那什么时候能处理好", "我已经打了三次电话了", "你们的服务太差了", "行那我等你们消息",
    "我的快递到现在还没收到", "能不能帮我换一个套餐", "是的", "我不太明白你的意思",
]


def make_call(rng: random.Random, index: int, duration_s: float = 300.0) -> CallEvidence:
    utts: list[Utterance] = []
    t = 0.5
    role = AGENT
    while t < duration_s - 5:
        text = "，".join(rng.choice(AGENT_LINES if role == AGENT else CUSTOMER_LINES)
                        for _ in range(rng.randint(1, 2)))
        words, pos, wt = [], 0, t
        while pos < len(text):
            n = rng.randint(1, 3)
            piece = text[pos:pos + n]
            words.append(Word(piece, wt, wt + 0.22 * len(piece), round(rng.uniform(0.6, 1.0), 3)))
            wt += 0.22 * len(piece)
            pos += n
        utts.append(Utterance(role, t, wt, text, words=tuple(words)))
        t = wt + rng.uniform(0.3, 1.5)
        role = CUSTOMER if role == AGENT else AGENT
    return CallEvidence(f"bench{index:05d}", duration_s, (AGENT, CUSTOMER), utterances=tuple(utts))


def run(calls: list[CallEvidence], matcher: LexiconMatcher, text_cfg: TextConfig) -> tuple[float, float, int]:
    """(total s, jieba s, hits) over ``calls``."""
    seg = matcher.segmenter
    original = seg.boundaries
    spent = [0.0]

    def timed(text: str) -> set[int]:
        t0 = time.perf_counter()
        out = original(text)
        spent[0] += time.perf_counter() - t0
        return out

    seg.boundaries = timed  # type: ignore[method-assign]
    n_hits = 0
    t0 = time.perf_counter()
    for call in calls:
        n_hits += len(detect_phrases(call, matcher, text_cfg))
    total = time.perf_counter() - t0
    seg.boundaries = original  # type: ignore[method-assign]
    return total, spent[0], n_hits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    calls = [make_call(rng, i) for i in range(args.calls)]
    chars = sum(len(u.text) for c in calls for u in c.utterances) / len(calls)
    turns = sum(len(c.utterances) for c in calls) / len(calls)
    print(f"{len(calls)} calls of 300 s: {turns:.0f} turns, {chars:.0f} characters per call")
    rules = load_rules()
    results = {}
    for name, fuzzy in (("baseline (fuzzy off)", False), ("callqa (fuzzy on)", True)):
        cfg = default_config().text.model_copy(update={"fuzzy": fuzzy})
        matcher = build_matcher(rules, cfg)
        total, jieba_s, hits = run(calls, matcher, cfg)
        results[name] = total
        print(f"{name:22s} {len(calls) / total:7.1f} calls/s/core  jieba {jieba_s / total:5.1%}  "
              f"normalise+match {1 - jieba_s / total:5.1%}  hits/call {hits / len(calls):.1f}")
    base, full = results["baseline (fuzzy off)"], results["callqa (fuzzy on)"]
    print(f"fuzzy costs x{full / base:.2f} of the baseline time; goal >= 300 calls/s/core")


if __name__ == "__main__":
    main()
