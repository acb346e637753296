"""``gpu.md``: the tables of ``python -m neuroenc.bench gpu``'s ``gpu.json``, as markdown for docs/speed.md."""

from __future__ import annotations

VARIANT_NAMES = {"fp32": "fp32", "bf16": "bf16-mixed", "bf16+compile": "bf16-mixed + compile"}


def _num(value, fmt: str) -> str:
    return "" if value is None else fmt.format(value)


def _first_line(error: str, width: int = 160) -> str:
    line = next((x.strip() for x in error.splitlines() if x.strip()), "")
    return (line[: width - 3] + "...") if len(line) > width else line


def _steps_table(rows: list[dict], variants: list[str]) -> list[str]:
    by = {(r["preset"], r["variant"]): r for r in rows}
    presets = list(dict.fromkeys(r["preset"] for r in rows))
    head = ["preset", "params", "TFLOP/step"]
    for v in variants:
        n = VARIANT_NAMES[v]
        head += [f"{n} step s", f"{n} peak MiB"] + ([f"{n} MFU"] if v != "fp32" else []) + \
            (["compile warm-up s"] if v == "bf16+compile" else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    errors = []
    for p in presets:
        ok = [by[(p, v)] for v in variants if (p, v) in by and "error" not in by[(p, v)]]
        cells = [p, _num(ok[0]["parameters"] / 1e6, "{:.2f} M") if ok else "",
                 _num(ok[0]["flops_per_step"] / 1e12, "{:.3f}") if ok else ""]
        for v in variants:
            r = by.get((p, v), {"error": "not measured"})
            if "error" in r:
                cells += ["failed", ""] + ([""] if v != "fp32" else []) + ([""] if v == "bf16+compile" else [])
                errors.append(f"- {p}, {VARIANT_NAMES[v]}: {_first_line(r['error'])}")
                continue
            cells += [f"{r['step_s']:.3f}", f"{r['peak_memory_mib']:.0f}"]
            cells += ["" if r["mfu"] is None else f"{100 * r['mfu']:.1f}%"] if v != "fp32" else []
            cells += [f"{r['warmup_s']:.0f}"] if v == "bf16+compile" else []
        lines.append("| " + " | ".join(cells) + " |")
    return lines + ([""] + errors if errors else [])


def _training_table(part: dict) -> list[str]:
    runs = {r["name"]: r for r in part.get("runs", [])}
    lines = ["| model | fp32 val bits/spike | bf16-mixed val bits/spike | bf16 - fp32 | result | fp32 s/step | "
             "bf16 s/step | fraction of oracle (fp32) |", "|---|---|---|---|---|---|---|---|"]
    errors = []
    for c in part.get("comparisons", []):
        fp32, bf16 = runs.get(f"{c['model']}-fp32", {}), runs.get(f"{c['model']}-bf16", {})
        lines.append(f"| {c['model']} | {_num(c['fp32_val_bps'], '{:.4f}')} | {_num(c['bf16_val_bps'], '{:.4f}')} | "
                     f"{_num(c['bf16_minus_fp32'], '{:+.4f}')} | {c['result']} | "
                     f"{_num(fp32.get('mean_train_step_s'), '{:.4f}')} | {_num(bf16.get('mean_train_step_s'), '{:.4f}')} | "
                     f"{_num(fp32.get('oracle_fraction'), '{:.1%}')} |")
        errors += [f"- {r['name']}: {_first_line(r['error'])}" for r in (fp32, bf16) if "error" in r]
    return lines + ([""] + errors if errors else [])


def markdown(result: dict) -> str:
    m, o, parts = result["machine"], result["options"], result["parts"]
    device = ", ".join(m["gpus"]) if result["device"] == "cuda" and m["gpus"] else f"CPU ({m['cpu_model']})"
    t, h, w = o["input"]
    out = [f"### `python -m neuroenc.bench gpu`: {device}",
           "",
           f"Commit {(m['git_commit'] or '?')[:10]}{' (with uncommitted changes)' if m['git_dirty'] else ''}, "
           f"torch {m['torch']}, CUDA {m['cuda']}, {m['cpu_count']} CPUs, {result['time']}; "
           f"`{' '.join(result['command'])}`, {result.get('total_s', 0):.0f} s in all.",
           ""]
    steps_rows = parts.get("steps", {}).get("rows", []) + parts.get("compile", {}).get("rows", [])
    if steps_rows:
        out += [f"Training step (forward, Poisson loss, backward, AdamW) of each preset, {t} x {h} x {w} frames, "
                f"batch {o['batch']}, median of {o['repeats']} steps after {o['warmup']} untimed; peak MiB is "
                "`torch.cuda.max_memory_allocated` (a CPU's peak resident memory on a CPU); MFU against the dense "
                "bf16 peak (blank where the GPU is not in neuroenc.bench.model's table); TFLOP/step counted on the "
                "eager model.", ""]
        out += _steps_table(steps_rows, [v for v in o["variants"] if any(r["variant"] == v for r in steps_rows)])
        out.append("")
    train = parts.get("training", {})
    if train.get("comparisons"):
        out += [f"bf16-mixed against fp32: {o['steps']} steps, seed 0, validated once at the end, the runs side by "
                f"side (so their s/step are not single-run speeds); pass if |bf16 - fp32| <= "
                f"{result['tolerance_bps']} bits/spike.", ""]
        out += _training_table(train) + [""]
    ddp = parts.get("ddp", {})
    out += [f"DDP: {ddp.get('status', 'not run')}: {ddp.get('summary', ddp.get('error', ''))}", ""]
    out += ["| part | status | budget s | used s | |", "|---|---|---|---|---|"]
    out += [f"| {name} | {p['status']} | {p['budget_s']:.0f} | {p['used_s']:.0f} | "
            f"{_first_line(p.get('summary') or p.get('error') or '')} |" for name, p in parts.items()]
    return "\n".join(out) + "\n"
