#!/usr/bin/env python3
"""The demo's two pictures, from `twistedpic ... --timeline FILE`:

    demo_pictures.py TIMELINE_JSON OUT_DIR

  OUT_DIR/contact_sheet.png    every generated image with its prompt and seed
  OUT_DIR/memory_timeline.png  device bytes in use over time, each residency event marked
"""
import json
import sys
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

COLOURS = {"device": (40, 120, 220), "host": (230, 140, 30), "disk": (150, 150, 150)}


def contact_sheet(images, out: Path):
    thumb, label_h, cols = 160, 34, 4
    rows = max(1, (len(images) + cols - 1) // cols)
    sheet = Image.new("RGB", (cols * thumb, rows * (thumb + label_h)), "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    for i, item in enumerate(images):
        x, y = (i % cols) * thumb, (i // cols) * (thumb + label_h)
        img = Image.open(item["path"]).convert("RGB").resize((thumb - 8, thumb - 8), Image.NEAREST)
        sheet.paste(img, (x + 4, y + 4))
        words, lines = item["prompt"].split(), [""]
        for w in words:  # wrap to the thumbnail's width
            if draw.textlength(lines[-1] + " " + w, font=font) > thumb - 8 and lines[-1]:
                lines.append(w)
            else:
                lines[-1] = (lines[-1] + " " + w).strip()
        text = "\n".join(lines[:2]) + f"  #{item['seed']}"
        draw.multiline_text((x + 4, y + thumb - 2), text, fill="black", font=font, spacing=1)
    sheet.save(out)


def memory_timeline(data, out: Path):
    """Device bytes over time on top; below, one lane per model showing its tier, each event a tick."""
    models = list(dict.fromkeys(e["model"] for e in data["events"]))
    lane_h, left, right, top, plot_h = 16, 150, 20, 24, 220
    w, h = 960, top + plot_h + 30 + lane_h * len(models) + 40
    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    samples = data["samples"] or [[0, 0]]
    t_end = max(s[0] for s in samples) or 1.0
    peak = max(max(s[1] for s in samples), 1)
    px = lambda t: left + (w - left - right) * t / t_end
    py = lambda b: top + plot_h - plot_h * b / peak
    d.text((left, 4), f"device memory in use ({data['device']})", fill="black", font=font)
    d.rectangle([left, top, w - right, top + plot_h], outline=(200, 200, 200))
    for frac in (0, 0.5, 1):
        d.text((left - 70, py(peak * frac) - 5), f"{peak * frac / 2**20:.2f} MiB", fill="black", font=font)
    pts = []
    for t, b in samples:  # a step plot: memory changes at the samples
        if pts:
            pts.append((px(t), pts[-1][1]))
        pts.append((px(t), py(b)))
    d.line(pts, fill=(20, 20, 20), width=2)
    lanes_top = top + plot_h + 30
    for i, m in enumerate(models):
        y = lanes_top + i * lane_h
        d.text((4, y + 2), m, fill="black", font=font)
        tier, since = "disk", 0.0
        for e in [e for e in data["events"] if e["model"] == m] + [{"t": t_end, "to": None}]:
            d.rectangle([px(since), y + 3, px(e["t"]), y + lane_h - 3], fill=COLOURS[tier])
            if e["to"] is not None:
                d.line([(px(e["t"]), y), (px(e["t"]), y + lane_h)], fill="black", width=1)
                # Where the device bytes changed, mark the event on the memory plot too.
                d.line([(px(e["t"]), top), (px(e["t"]), top + 6)], fill=COLOURS[e["to"]], width=2)
                tier, since = e["to"], e["t"]
    y = lanes_top + len(models) * lane_h + 8
    d.text((left, y), f"seconds 0 .. {t_end:.1f}.  Lanes: where each network is "
           "(blue: device, orange: pinned host, grey: disk); ticks: residency events (lazy load, "
           "unload-after, idle timeout).", fill="black", font=font)
    img.save(out)


def main() -> int:
    data = json.loads(Path(sys.argv[1]).read_text())
    out = Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    contact_sheet(data["images"], out / "contact_sheet.png")
    memory_timeline(data, out / "memory_timeline.png")
    print(f"{out / 'contact_sheet.png'}\n{out / 'memory_timeline.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
