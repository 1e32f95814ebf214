"""COCO-format detection data: read (pycocotools), check, resize; and evaluate (COCOeval).

A ``coco`` dataset is a folder (``dataset.path``) holding ``train.json`` with its images
under ``train/`` and ``test.json`` with its images under ``test/`` (each image's
``file_name`` is relative to its folder): the COCO "instances" format, ``bbox`` as
``[x, y, width, height]`` in pixels of the image as stored. Every image is resized to
``dataset.imageSize`` ``[height, width]`` (default: the first training image's size) and
its boxes with it; crowd annotations (``iscrowd: 1``) are not trained on and are
ignored by the evaluation, as COCO does. Categories are those of ``train.json``, in
their order (the model's labels 0..K-1); ``test.json`` may only use them.

Bad data is a DataError naming the file and the field (``train.json annotations[3].bbox``).
``evaluate_coco`` gives mAP@[.5:.95] and mAP@.5 from pycocotools' ``COCOeval`` (no
hand-written AP).
"""
from __future__ import annotations

import contextlib
import functools
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kubenas_trainer.errors import DataError

BOX_TOLERANCE = 1.0  # pixels a box may pass the image's edge by (rounding in annotation tools)


@dataclass(frozen=True)
class CocoSplit:
    """The images of one annotation file, resized: ``images`` uint8 N x 3 x H x W, per
    image its ``boxes`` (float32 K x 4, x1 y1 x2 y2 in resized pixels), ``labels``
    (int64 K, 0..classes-1) and ``crowd`` (bool K), and its ``names`` (file names)."""
    images: np.ndarray
    boxes: list
    labels: list
    crowd: list
    names: np.ndarray


@dataclass(frozen=True)
class CocoData:
    train: CocoSplit
    test: CocoSplit
    classes: list  # category names, label order
    category_ids: list  # the COCO category id of each label


def _quiet_coco(path: Path):
    from pycocotools.coco import COCO

    with contextlib.redirect_stdout(io.StringIO()):
        try:
            return COCO(str(path))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DataError(f"dataset coco: {path.name} is not valid JSON: {exc}") from None
        except (KeyError, TypeError, AssertionError) as exc:
            raise DataError(f"dataset coco: {path.name} is not a COCO annotation file "
                            f"(images, annotations, categories): {type(exc).__name__}: {exc}") from None


def _categories(coco, where: str) -> tuple[list, list]:
    cats = coco.dataset.get("categories")
    if not isinstance(cats, list) or not cats:
        raise DataError(f"dataset coco: {where} categories: needs at least one category")
    ids, names = [], []
    for i, cat in enumerate(cats):
        if not isinstance(cat, dict) or not isinstance(cat.get("id"), int) or isinstance(cat.get("id"), bool):
            raise DataError(f"dataset coco: {where} categories[{i}].id: must be an integer")
        ids.append(cat["id"])
        names.append(str(cat.get("name", cat["id"])))
    if len(set(ids)) != len(ids):
        raise DataError(f"dataset coco: {where} categories: ids repeat ({ids})")
    return ids, names


def _read_split(root: Path, split: str, size: tuple[int, int] | None, category_ids: list | None
                ) -> tuple[CocoSplit, list, list, tuple[int, int]]:
    from PIL import Image

    where = f"{split}.json"
    ann_path = root / where
    if not ann_path.is_file():
        raise DataError(f"dataset coco: {ann_path} not found (a coco dataset is a folder with train.json, train/, "
                        "test.json and test/; docs/tasks.md)")
    coco = _quiet_coco(ann_path)
    ids, names = _categories(coco, where)
    if category_ids is None:
        category_ids = ids
    label_of = {cid: i for i, cid in enumerate(category_ids)}
    images = coco.dataset.get("images") or []
    if not images:
        raise DataError(f"dataset coco: {where} images: has no images")
    anns_of: dict = {}
    image_ids = {img.get("id") for img in images if isinstance(img, dict)}
    for i, ann in enumerate(coco.dataset.get("annotations") or []):
        field = f"{where} annotations[{i}]"
        if ann.get("image_id") not in image_ids:
            raise DataError(f"dataset coco: {field}.image_id: {ann.get('image_id')!r} is not an image of {where}")
        if ann.get("category_id") not in label_of:
            raise DataError(f"dataset coco: {field}.category_id: {ann.get('category_id')!r} is not a category of "
                            f"train.json (ids {', '.join(map(str, category_ids))})")
        anns_of.setdefault(ann["image_id"], []).append((i, ann))
    out_images, out_boxes, out_labels, out_crowd, out_names = [], [], [], [], []
    folder = root / split
    for k, img in enumerate(images):
        name = img.get("file_name")
        if not isinstance(name, str) or not name:
            raise DataError(f"dataset coco: {where} images[{k}].file_name: must be a file name under {split}/")
        try:
            with Image.open(folder / name) as im:
                rgb = im.convert("RGB")
        except OSError as exc:
            raise DataError(f"dataset coco: {where} images[{k}].file_name: cannot read {split}/{name}: {exc}") from None
        w0, h0 = rgb.size
        for key, real in (("width", w0), ("height", h0)):
            if key in img and img[key] != real:
                raise DataError(f"dataset coco: {where} images[{k}].{key}: says {img[key]}, the file {name} has {real}")
        if size is None:
            size = (h0, w0)
        h, w = size
        if (h0, w0) != (h, w):
            rgb = rgb.resize((w, h), Image.BILINEAR)
        sx, sy = w / w0, h / h0
        boxes, labels, crowd = [], [], []
        for i, ann in anns_of.get(img.get("id"), []):
            bbox = ann.get("bbox")
            field = f"{where} annotations[{i}].bbox"
            if not (isinstance(bbox, list) and len(bbox) == 4 and all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) for v in bbox)):
                raise DataError(f"dataset coco: {field}: must be [x, y, width, height], got {bbox!r}")
            x, y, bw, bh = (float(v) for v in bbox)
            if bw <= 0 or bh <= 0:
                raise DataError(f"dataset coco: {field}: width and height must be > 0, got {bbox}")
            t = BOX_TOLERANCE
            if x < -t or y < -t or x + bw > w0 + t or y + bh > h0 + t:
                raise DataError(f"dataset coco: {field}: {bbox} lies outside its image {name} ({w0} x {h0} pixels; "
                                "bbox is [x, y, width, height] from the top-left corner)")
            boxes.append([max(x, 0.0) * sx, max(y, 0.0) * sy, min(x + bw, w0) * sx, min(y + bh, h0) * sy])
            labels.append(label_of[ann["category_id"]])
            crowd.append(bool(ann.get("iscrowd", 0)))
        out_images.append(np.asarray(rgb, dtype=np.uint8).transpose(2, 0, 1))
        out_boxes.append(np.asarray(boxes, dtype=np.float32).reshape(-1, 4))
        out_labels.append(np.asarray(labels, dtype=np.int64))
        out_crowd.append(np.asarray(crowd, dtype=bool))
        out_names.append(name)
    split_data = CocoSplit(np.stack(out_images), out_boxes, out_labels, out_crowd, np.asarray(out_names))
    return split_data, category_ids, names, size


@functools.lru_cache(maxsize=2)
def _read_cached(root: str, size: tuple | None, stamp: tuple) -> CocoData:
    path = Path(root)
    train, ids, names, size = _read_split(path, "train", size, None)
    test, _, _, _ = _read_split(path, "test", size, ids)
    if not any(len(b) for b in train.boxes):
        raise DataError("dataset coco: train.json annotations: no image has an object")
    return CocoData(train, test, names, ids)


def read_coco(path: str, image_size: tuple | None) -> CocoData:
    """The ``coco`` dataset at ``path`` (read once per process while its files are unchanged)."""
    root = Path(os.path.expanduser(str(path))).resolve()
    if not root.is_dir():
        raise DataError(f"dataset coco: {root} is not a folder (dataset.path: the folder with train.json, train/, "
                        "test.json and test/)")
    stamp = tuple((root / f).stat().st_mtime_ns if (root / f).exists() else 0 for f in ("train.json", "test.json"))
    return _read_cached(str(root), tuple(image_size) if image_size else None, stamp)


def ground_truth(boxes: list, labels: list, crowd: list, size: tuple[int, int], num_classes: int):
    """A pycocotools ``COCO`` of the given images (ids 0..N-1, category ids = labels)."""
    from pycocotools.coco import COCO

    h, w = size
    anns = []
    for image_id, (b, l, c) in enumerate(zip(boxes, labels, crowd)):
        for box, label, is_crowd in zip(np.asarray(b).tolist(), np.asarray(l).tolist(), np.asarray(c).tolist()):
            bw, bh = box[2] - box[0], box[3] - box[1]
            anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": int(label), "iscrowd": int(is_crowd),
                         "bbox": [box[0], box[1], bw, bh], "area": bw * bh})
    gt = COCO()
    gt.dataset = {"images": [{"id": i, "width": w, "height": h} for i in range(len(boxes))], "annotations": anns,
                  "categories": [{"id": k} for k in range(num_classes)]}
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
    return gt


def evaluate_coco(gt, detections: list) -> dict[str, float]:
    """``{"mAP": mAP@[.5:.95], "mAP50": mAP@.5}`` of ``detections`` (COCO result dicts:
    image_id, category_id, bbox [x, y, w, h], score) against ``gt``, by ``COCOeval``
    (100 detections per image); no detection at all scores 0."""
    from pycocotools.cocoeval import COCOeval

    if not detections:
        return {"mAP": 0.0, "mAP50": 0.0}
    with contextlib.redirect_stdout(io.StringIO()):
        result = gt.loadRes(detections)
        ev = COCOeval(gt, result, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {"mAP": max(float(ev.stats[0]), 0.0), "mAP50": max(float(ev.stats[1]), 0.0)}


# --------------------------------------------------------------------------- synthetic

SHAPES = ("square", "circle", "triangle")


def _background(rng: np.random.RandomState, size: int) -> np.ndarray:
    """A textured background: a few coloured sinusoid gratings plus noise, H x W x 3 in [0, 1]."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    img = np.zeros((size, size, 3), dtype=np.float32) + rng.uniform(0.2, 0.6, 3)
    for _ in range(3):
        fx, fy, phase = rng.uniform(-12, 12), rng.uniform(-12, 12), rng.uniform(0, 2 * np.pi)
        img += 0.12 * np.sin(2 * np.pi * (fx * xx + fy * yy) + phase)[..., None] * rng.uniform(-1, 1, 3)
    img += rng.normal(0, 0.04, img.shape)
    return img


def _mask(shape: str, size: int, x: float, y: float, s: float) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    if shape == "square":
        return (xx >= x) & (xx < x + s) & (yy >= y) & (yy < y + s)
    if shape == "circle":
        r = s / 2
        return (xx - x - r) ** 2 + (yy - y - r) ** 2 <= r * r
    # triangle: apex at the top centre, base at the bottom
    u = (yy - y) / s
    return (u >= 0) & (u <= 1) & (np.abs(xx - x - s / 2) <= u * s / 2)


def shapes_split(n: int, size: int, seed: int, max_objects: int = 3, min_side: int = 10,
                 max_side: int = 24) -> tuple[list, list]:
    """``n`` images (uint8 H x W x 3) of 1..``max_objects`` shapes each (square, circle,
    triangle; a random colour, kept apart), and their COCO annotations (boxes are the
    shapes' tight pixel bounds)."""
    rng = np.random.RandomState(seed)
    images, anns = [], []
    for image_id in range(n):
        img = _background(rng, size)
        placed: list = []
        for _ in range(rng.randint(1, max_objects + 1)):
            for _try in range(20):
                s = rng.uniform(min_side, max_side)
                x, y = rng.uniform(0, size - s), rng.uniform(0, size - s)
                if all(x + s < px or px + ps < x or y + s < py or py + ps < y for px, py, ps in placed):
                    break
            else:
                continue
            placed.append((x, y, s))
            category = rng.randint(len(SHAPES))
            mask = _mask(SHAPES[category], size, x, y, s)
            if not mask.any():
                continue
            img[mask] = rng.uniform(0, 1, 3) * 0.3 + (0.7 if img[mask].mean() < 0.5 else 0.0)
            rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
            bx, by = float(cols[0]), float(rows[0])
            bw, bh = float(cols[-1] + 1 - cols[0]), float(rows[-1] + 1 - rows[0])
            anns.append({"image_id": image_id, "category_id": category + 1, "bbox": [bx, by, bw, bh],
                         "area": bw * bh, "iscrowd": 0})
        images.append((np.clip(img, 0, 1) * 255).astype(np.uint8))
    return images, anns


def write_shapes(out: str | Path, *, train: int = 240, test: int = 80, size: int = 64, seed: int = 0,
                 **kw) -> Path:
    """Write a synthetic ``coco`` dataset to the folder ``out``: ``train.json`` + ``train/``,
    ``test.json`` + ``test/`` (PNG images), categories square (1), circle (2), triangle (3)."""
    from PIL import Image

    out = Path(out)
    for split, n, split_seed in (("train", train, seed), ("test", test, seed + 10_000)):
        (out / split).mkdir(parents=True, exist_ok=True)
        images, anns = shapes_split(n, size, split_seed, **kw)
        entries = []
        for i, img in enumerate(images):
            name = f"{i:05d}.png"
            Image.fromarray(img).save(out / split / name)
            entries.append({"id": i, "file_name": name, "width": size, "height": size})
        for k, ann in enumerate(anns):
            ann["id"] = k + 1
        doc = {"images": entries, "annotations": anns,
               "categories": [{"id": k + 1, "name": name} for k, name in enumerate(SHAPES)]}
        (out / f"{split}.json").write_text(json.dumps(doc))
    return out


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m kubenas_trainer.tasks.coco",
                                     description="write a synthetic coco dataset of shapes on textured backgrounds")
    parser.add_argument("kind", choices=("shapes",))
    parser.add_argument("out", help="the folder to write (train.json, train/, test.json, test/)")
    parser.add_argument("--train", type=int, default=240)
    parser.add_argument("--test", type=int, default=80)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    out = write_shapes(args.out, train=args.train, test=args.test, size=args.size, seed=args.seed)
    print(f"wrote {out}: {args.train} training and {args.test} test images of {args.size} x {args.size}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
