"""Token counting speed: count_tokens against raw tiktoken, and the fast path of fits().

Run from the repository root: ``python -m benchmarks.tokens``. Prints a table and writes
benchmarks/results/tokens.json. Every number is the median of several interleaved runs.
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from pathlib import Path

import tiktoken

from llm_routing.tokens import count_tokens, fits, get_encoding

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "data" / "corpus"
RESULTS = ROOT / "benchmarks" / "results" / "tokens.json"
REPEATS = 7
MODEL = "openai:gpt-4o-mini"
WINDOW = 128_000


def mixed_text(size: int) -> str:
    """Prose, code, JSON, CJK and emoji from the test corpus, repeated to ``size`` bytes."""
    parts = [p.read_text("utf-8") for p in sorted(CORPUS.iterdir())]
    unit = "\n\n".join(parts)
    reps = size // len(unit.encode()) + 1
    text = (unit + "\n") * reps
    return text.encode()[:size].decode("utf-8", "ignore")


def median_seconds(fn, repeats: int = REPEATS) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def interleaved(fns: dict, repeats: int = REPEATS) -> dict[str, float]:
    """Median seconds per function, runs interleaved so drift hits all of them alike."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def main() -> None:
    enc: tiktoken.Encoding = get_encoding("o200k_base")
    count_tokens("warm up", MODEL)

    text_1mb = mixed_text(1_000_000)
    mb = len(text_1mb.encode()) / 1e6
    t = interleaved(
        {
            "count_tokens": lambda: count_tokens(text_1mb, MODEL),
            "tiktoken_encode": lambda: enc.encode(text_1mb),
            "tiktoken_encode_ordinary": lambda: enc.encode_ordinary(text_1mb),
        }
    )
    assert count_tokens(text_1mb, MODEL) == len(enc.encode_ordinary(text_1mb))

    text_10mb = mixed_text(10_000_000)
    messages_10mb = [("system", "Summarise."), ("user", text_10mb)]
    exact_10mb = count_tokens(text_10mb, MODEL)
    assert not fits(text_10mb, MODEL, WINDOW)
    d = interleaved(
        {
            "fits_str": lambda: fits(text_10mb, MODEL, WINDOW),
            "fits_messages": lambda: fits(messages_10mb, MODEL, WINDOW),
            "fits_anthropic": lambda: fits(text_10mb, "anthropic:claude-haiku-4-5", 200_000),
            "full_count": lambda: count_tokens(text_10mb, MODEL) <= WINDOW,
        },
        repeats=5,
    )
    small = mixed_text(300_000)
    d_small = median_seconds(lambda: fits(small, MODEL, WINDOW))

    results = {
        "machine": {"python": platform.python_version(), "processor": platform.machine()},
        "tiktoken": tiktoken.__version__,
        "throughput_1mb_mixed": {
            "bytes": int(mb * 1e6),
            "count_tokens_mb_s": mb / t["count_tokens"],
            "tiktoken_encode_mb_s": mb / t["tiktoken_encode"],
            "tiktoken_encode_ordinary_mb_s": mb / t["tiktoken_encode_ordinary"],
            "ratio_vs_encode": t["tiktoken_encode"] / t["count_tokens"],
            "ratio_vs_encode_ordinary": t["tiktoken_encode_ordinary"] / t["count_tokens"],
            "goal_ratio": 0.8,
        },
        "fits_10mb_gpt_4o_mini": {
            "bytes": len(text_10mb.encode()),
            "exact_tokens": exact_10mb,
            "fast_path_str_ms": d["fits_str"] * 1e3,
            "fast_path_messages_ms": d["fits_messages"] * 1e3,
            "fast_path_anthropic_200k_ms": d["fits_anthropic"] * 1e3,
            "full_count_ms": d["full_count"] * 1e3,
            "speedup": d["full_count"] / d["fits_str"],
            "goal_ms": 50.0,
        },
        "fits_300kb_under_window_ms": d_small * 1e3,
    }

    tp, ft = results["throughput_1mb_mixed"], results["fits_10mb_gpt_4o_mini"]
    rows = [
        ("count_tokens, 1 MB mixed", f"{tp['count_tokens_mb_s']:.1f} MB/s", ""),
        ("tiktoken encode, 1 MB mixed", f"{tp['tiktoken_encode_mb_s']:.1f} MB/s", ""),
        ("tiktoken encode_ordinary", f"{tp['tiktoken_encode_ordinary_mb_s']:.1f} MB/s", ""),
        ("ratio count_tokens / encode", f"{tp['ratio_vs_encode']:.2f}x", "goal >= 0.80"),
        ("ratio vs encode_ordinary", f"{tp['ratio_vs_encode_ordinary']:.2f}x", ""),
        ("fits(10 MB str, 128k)", f"{ft['fast_path_str_ms']:.1f} ms", "goal <= 50 ms"),
        ("fits(10 MB messages, 128k)", f"{ft['fast_path_messages_ms']:.1f} ms", ""),
        ("fits(10 MB, claude 200k est.)", f"{ft['fast_path_anthropic_200k_ms']:.1f} ms", ""),
        ("full count of 10 MB", f"{ft['full_count_ms']:.1f} ms", ""),
        ("speed-up fits vs full count", f"{ft['speedup']:.0f}x", ""),
        ("fits(300 KB, 128k) (counts all)", f"{d_small * 1e3:.1f} ms", ""),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'value':>12}  note")
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:>12}  {note}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
