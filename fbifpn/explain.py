"""Where the detector looks: Grad-CAM, the model's own maps, and how well they hit the forgery.

- Grad-CAM and Grad-CAM++ come from the `grad-cam` package (Gildenblat et al.), for the cls logit,
  at a chosen F-BiFPN level or at the backbone's last stage; hooks are released after every call.
- The model's own evidence: each level's forgery-attention map and the predicted mask.
- Localisation against ground-truth masks: IoU at a threshold, the pointing game (does the maximum
  fall inside the mask) and the energy inside the mask, aggregated per manipulation method.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from fbifpn.models.net import Detector, LogitModel

CAM_METHODS = ("gradcam", "gradcam++")


def neck_layer(model: Detector, level: int = 0) -> nn.Module:
    """The module whose output is the last fusion layer's map at `level` (0 = stride 4)."""
    neck = getattr(model, "neck", None)
    if neck is None:
        raise ValueError(
            f"this model ({type(model).__name__}) has no F-BiFPN neck, so it has no pyramid level to "
            "explain: Grad-CAM at a level, attention and mask maps need a variant with a neck "
            "(every variant but backbone_only)"
        )
    if level not in neck.levels:
        raise ValueError(f"level {level}: the neck's levels are {list(neck.levels)}")
    position = list(neck.levels).index(level)
    layer = neck.layers[-1] if len(neck.layers) else None
    if layer is not None:
        index = layer.outputs[position] - len(neck.levels)
        if index >= 0:
            return layer.nodes[index].conv
    return neck.proj[position]  # a level no node writes (C5 in FPN, or no layers): its projection


def backbone_layer(model: Detector) -> nn.Module:
    """The backbone's last stage (timm's own feature-info name for it)."""
    body = model.backbone.body
    info = getattr(body, "feature_info", None)
    if info is None:
        raise ValueError("this backbone exposes no feature_info")
    name = info.module_name()[-1]
    try:
        return body.get_submodule(name)
    except AttributeError:
        return body.get_submodule(name.replace(".", "_"))  # FeatureListNet flattens module names


def gradcam(model: Detector, images: torch.Tensor, layer: nn.Module, method: str = "gradcam") -> np.ndarray:
    """CAMs of the fake logit, [B, H, W] in [0, 1], at the input's size. Hooks never outlive the call."""
    from pytorch_grad_cam import GradCAM, GradCAMPlusPlus
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    if method not in CAM_METHODS:
        raise ValueError(f"CAM method {method!r}: use one of {', '.join(CAM_METHODS)}")
    cls = GradCAM if method == "gradcam" else GradCAMPlusPlus
    was_training = model.training
    model.eval()
    cam = cls(model=LogitModel(model), target_layers=[layer])
    try:
        maps = cam(input_tensor=images, targets=[ClassifierOutputTarget(0)] * len(images))
    finally:
        cam.activations_and_grads.release()  # not `with`: grad-cam's __exit__ swallows IndexError
        model.train(was_training)
    return np.nan_to_num(np.asarray(maps, np.float32))


@torch.no_grad()
def model_maps(model: Detector, images: torch.Tensor) -> dict[str, np.ndarray]:
    """Probabilities at the input's size: `mask` [B, H, W] and `attention/<level>` (mean over layers)."""
    model.eval()
    out = model(images)
    size = images.shape[-2:]
    maps = {}
    if out.mask_logit is not None:
        maps["mask"] = F.interpolate(torch.sigmoid(out.mask_logit.float()), size=size, mode="bilinear")[
            :, 0
        ].numpy()
    by_level: dict[int, list[torch.Tensor]] = {}
    for logit, level in zip(out.attn_logits, out.attn_levels, strict=True):
        by_level.setdefault(level, []).append(torch.sigmoid(logit.float()))
    for level, ms in sorted(by_level.items()):
        mean = torch.stack(ms).mean(0)
        maps[f"attention/{level}"] = F.interpolate(mean, size=size, mode="bilinear")[:, 0].numpy()
    return maps


# --------------------------------------------------------------------------- localisation scores


def iou(heat: np.ndarray, mask: np.ndarray, threshold: float = 0.5) -> float:
    pred, truth = heat >= threshold, mask >= 0.5
    union = np.logical_or(pred, truth).sum()
    return float(np.logical_and(pred, truth).sum() / union) if union else float("nan")


def pointing_game(heat: np.ndarray, mask: np.ndarray) -> float:
    """1 when the map's maximum lies inside the mask, else 0."""
    y, x = np.unravel_index(int(np.argmax(heat)), heat.shape)
    return float(mask[y, x] >= 0.5)


def energy_inside(heat: np.ndarray, mask: np.ndarray) -> float:
    """Share of the map's total mass inside the mask."""
    total = float(np.clip(heat, 0, None).sum())
    return float(np.clip(heat, 0, None)[mask >= 0.5].sum() / total) if total > 0 else float("nan")


def localisation(
    model: Detector,
    loader,
    level: int = 0,
    threshold: float = 0.5,
    method: str = "gradcam",
    progress: bool = True,
) -> pd.DataFrame:
    """One row per (masked fake crop, map kind) with IoU, pointing game and energy inside the mask."""
    from tqdm.auto import tqdm

    rows = []
    layers = {"cam_neck": neck_layer(model, level)} if hasattr(model, "neck") else {}
    layers["cam_backbone"] = backbone_layer(model) if hasattr(model.backbone, "body") else None
    bar = tqdm(total=len(loader), desc="localisation", disable=not progress, leave=False)
    for batch in loader:  # never tqdm(loader): see fbifpn.engine.evaluate.predict
        bar.update()
        keep = (batch["label"] == 1) & batch["has_mask"]
        if not keep.any():
            continue
        images, masks = batch["image"][keep], batch["mask"][keep][:, 0].numpy()
        maps = {k: gradcam(model, images, layer, method) for k, layer in layers.items() if layer is not None}
        maps |= model_maps(model, images)
        methods = [m for m, k in zip(batch["method"], keep.tolist(), strict=True) if k]
        for kind, heat in maps.items():
            for i in range(len(images)):
                rows.append(
                    {
                        "method": methods[i],
                        "map": kind,
                        "iou": iou(heat[i], masks[i], threshold),
                        "pointing": pointing_game(heat[i], masks[i]),
                        "energy": energy_inside(heat[i], masks[i]),
                    }
                )
    bar.close()
    return pd.DataFrame(rows)


def localisation_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean of each score per manipulation method and map kind."""
    return rows.groupby(["map", "method"])[["iou", "pointing", "energy"]].mean().reset_index()


def overlay(image_rgb: np.ndarray, heat: np.ndarray, image_weight: float = 0.5) -> np.ndarray:
    """A heat map over an RGB uint8 image, through grad-cam's own helper."""
    from pytorch_grad_cam.utils.image import show_cam_on_image

    return show_cam_on_image(
        image_rgb.astype(np.float32) / 255, np.clip(heat, 0, 1), use_rgb=True, image_weight=image_weight
    )


def denormalise(image: torch.Tensor, mean, std) -> np.ndarray:
    """A dataset tensor [3, H, W] back to RGB uint8."""
    x = image.permute(1, 2, 0).numpy() * np.asarray(std) + np.asarray(mean)
    return np.clip(np.round(x * 255), 0, 255).astype(np.uint8)


def method_tiles(model: Detector, dataset, level: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """For the first masked fake of each manipulation method in `dataset`, RGB tiles: the crop, its
    ground-truth mask, the predicted mask, the attention map of every pyramid level, Grad-CAM of the cls
    logit at neck `level` and at the backbone's last stage (maps the model lacks are left out)."""
    firsts: dict[str, int] = {}
    for i, item in enumerate(dataset.items):
        rows = dataset.videos[item.video]
        method = rows["method"].iloc[0]
        if rows["label"].iloc[0] == 1 and bool(rows["has_mask"].iloc[0]) and method not in firsts:
            firsts[method] = i
    if not firsts:
        raise ValueError("no fake with a ground-truth mask in this dataset split: nothing to explain")
    tiles = {}
    for method, index in sorted(firsts.items()):
        sample = dataset[index]
        image = sample["image"][None]
        rgb = denormalise(sample["image"], dataset.mean, dataset.std)
        maps = model_maps(model, image)
        row = {"crop": rgb, "ground truth": overlay(rgb, sample["mask"][0].numpy())}
        if "mask" in maps:
            row["predicted mask"] = overlay(rgb, maps["mask"][0])
        for key in sorted(k for k in maps if k.startswith("attention/")):
            row[f"attention P{int(key.split('/')[1]) + 2}"] = overlay(rgb, maps[key][0])
        if hasattr(model, "neck"):
            row[f"Grad-CAM P{level + 2}"] = overlay(rgb, gradcam(model, image, neck_layer(model, level))[0])
        row["Grad-CAM backbone"] = overlay(rgb, gradcam(model, image, backbone_layer(model))[0])
        tiles[method] = row
    return tiles


def method_grid(model: Detector, dataset, level: int = 0, cell: float = 1.5):
    """The paper-style figure (a matplotlib Figure): one row per manipulation method, one column per
    map of `method_tiles`."""
    import matplotlib.pyplot as plt

    tiles = method_tiles(model, dataset, level)
    columns = list(next(iter(tiles.values())))
    fig, axes = plt.subplots(
        len(tiles), len(columns), figsize=(cell * len(columns), cell * len(tiles) + 0.3), squeeze=False
    )
    for r, (method, row) in enumerate(tiles.items()):
        for c, name in enumerate(columns):
            ax = axes[r, c]
            ax.imshow(row[name])
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            if r == 0:
                ax.set_title(name, fontsize=8)
            if c == 0:
                ax.set_ylabel(method, fontsize=8)
    fig.tight_layout(pad=0.3)
    return fig
