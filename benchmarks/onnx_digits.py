"""The shipped digits CNN (rowstat/net/models/digits_cnn.onnx) on the full digits test split:
float accuracy (onnxruntime on the float graph) against int8 accuracy (rowstat's quantization,
the model engine: the integers the RTL computes), with the modelled cycles and energy per image;
optionally a few images on the RTL too.

    .venv/bin/python benchmarks/onnx_digits.py [--presets tiny,eyeriss] [--rtl-images 0]
        [--rtl-presets tiny] [--out docs/results/onnx]

Writes OUT/digits.json and OUT/digits.md.
"""

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from rowstat.gen.config import load_arch
from rowstat.net import load, quantize, run_network
from rowstat.net.digits import digits_model_path, digits_split


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", default="tiny,eyeriss")
    parser.add_argument("--rtl-images", type=int, default=0,
                        help="also run this many test images on the RTL of --rtl-presets")
    parser.add_argument("--rtl-presets", default="tiny",
                        help="presets to run on the RTL (the 12 x 14 build takes minutes)")
    parser.add_argument("--out", default="docs/results/onnx")
    args = parser.parse_args(argv)
    x_tr, _, x_te, y_te = digits_split()
    path = str(digits_model_path())
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    float_pred = sess.run(None, {"image": x_te})[0].argmax(1)
    float_acc = float((float_pred == y_te).mean())
    net = load(path)
    qnet = quantize(net, x_tr)
    rows = []
    for preset in args.presets.split(","):
        arch = load_arch(preset)
        t0 = time.monotonic()
        result = run_network(arch, qnet, x_te, "model")
        seconds = time.monotonic() - t0
        pred = result.logits.argmax(1)
        tot = result.totals()
        row = {"preset": preset, "images": len(y_te),
               "int8_accuracy": float((pred == y_te).mean()),
               "agree_with_float": float((pred == float_pred).mean()),
               "cycles_per_image": tot["cycles"] / len(y_te),
               "energy_per_image": tot["energy"] / len(y_te),
               "model_seconds": round(seconds, 2),
               "layers": [{k: s[k] for k in ("name", "mapping", "cycles", "pe_utilization",
                                             "dram_read_words", "dram_write_words",
                                             "glb_reads", "glb_writes")}
                          | {"energy": s["energy"]["total"]} for s in result.layers]}
        if args.rtl_images and preset in args.rtl_presets.split(","):
            n = args.rtl_images
            t0 = time.monotonic()
            rtl = run_network(arch, qnet, x_te[:n], "rtl")
            rtl_seconds = time.monotonic() - t0
            ref = run_network(arch, qnet, x_te[:n], "model")
            row["rtl"] = {"images": n, "equal_to_model": bool(np.array_equal(rtl.ints, ref.ints)),
                          "accuracy": float((rtl.logits.argmax(1) == y_te[:n]).mean()),
                          "cycles": rtl.totals()["cycles"], "seconds": round(rtl_seconds)}
        rows.append(row)
        print(f"{preset}: int8 accuracy {row['int8_accuracy']:.4f} (float {float_acc:.4f}), "
              f"{row['cycles_per_image']:.0f} cycles per image", flush=True)
    command = "python benchmarks/onnx_digits.py " + " ".join(argv if argv is not None
                                                              else sys.argv[1:])
    out = {"date": datetime.date.today().isoformat(), "command": command.strip(),
           "model": "rowstat/net/models/digits_cnn.onnx", "test_images": len(y_te),
           "float_accuracy_onnxruntime": float_acc, "frac_in": qnet.frac_in,
           "layers_frac": [(q.name, q.frac_in, q.frac_w, q.frac_out) for q in qnet.layers],
           "presets": rows}
    dest = Path(args.out)
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "digits.json").write_text(json.dumps(out, indent=2) + "\n")
    lines = [f"Digits CNN on the full digits test split ({len(y_te)} images; sklearn "
             f"load_digits, stratified 25% split, seed 0), {out['date']}.", "",
             f"Command: `{out['command']}`", "",
             f"Float model (onnxruntime on the float graph): accuracy **{float_acc:.2%}**.", "",
             "| preset | int8 accuracy | agrees with float | cycles / image | energy / image |"
             + (" RTL: images, logits equal to the model's, accuracy, cycles / image |"
                if args.rtl_images else ""),
             "|---|---|---|---|---|" + ("---|" if args.rtl_images else "")]
    for r in rows:
        line = (f"| {r['preset']} | **{r['int8_accuracy']:.2%}** | {r['agree_with_float']:.2%} "
                f"| {r['cycles_per_image']:,.0f} | {r['energy_per_image']:.4g} |")
        if "rtl" in r:
            rt = r["rtl"]
            line += (f" {rt['images']}, {'yes' if rt['equal_to_model'] else 'NO'}, "
                     f"{rt['accuracy']:.2%}, {rt['cycles'] / rt['images']:,.0f} |")
        elif args.rtl_images:
            line += " not run |"
        lines.append(line)
    lines += ["", "int8: per-tensor symmetric power-of-two scales calibrated on the training "
              "split; every Conv and the Gemm on the accelerator (the model engine's integers "
              "are the RTL's), max pool and flatten on the host. Cycles and energy (relative "
              "units, one 16-bit MAC = 1) are the analytical model's for the whole test split "
              "as one batch, divided by the images."]
    (dest / "digits.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {dest}/digits.json and digits.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
