import math

import pytest
import torch

from ddcore.augment import (
    CROP, SCALE, VALID_OPS, AugParams, apply, augment, parse_strategy, sample_params, shift_pixels, siamese,
)

ALL = "_".join(VALID_OPS)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def image(b: int = 1, h: int = 32, w: int = 32, seed: int = 1) -> torch.Tensor:
    """Strictly positive random images, so a zero in the output can only come from the augmentation."""
    return torch.rand(b, 3, h, w, generator=gen(seed)) + 0.5


def one(op: str, **values: float) -> AugParams:
    """A single (shared) draw with the given values."""
    return AugParams(op, {k: torch.tensor([v]) for k, v in values.items()})


@pytest.mark.parametrize("op", VALID_OPS)
def test_siamese_identical_rows(op: str) -> None:
    single = image()
    g = gen(3)
    for _ in range(5):
        real, syn = siamese([single.expand(5, -1, -1, -1).clone(), single.expand(2, -1, -1, -1).clone()], op, g)
        assert real.shape == (5, 3, 32, 32) and syn.shape == (2, 3, 32, 32)
        for out in (real, syn):
            assert torch.equal(out, real[:1].expand_as(out))


def test_siamese_shares_one_draw_across_batches() -> None:
    x = image(4, seed=5)
    a, b = siamese([x, x.clone()], ALL, gen(7))
    assert torch.equal(a, b)
    assert torch.equal(a, apply(x, sample_params(ALL, gen(7))))


@pytest.mark.parametrize("op", VALID_OPS)
def test_augment_draws_per_image_and_repeats_for_a_seed(op: str) -> None:
    single = image(1, 28, 28)
    batch = single.expand(16, -1, -1, -1).clone()
    out = augment(batch, op, gen(2))
    assert len({tuple(row.flatten().tolist()) for row in out}) > 1  # identical inputs, different outputs
    assert torch.equal(out, augment(batch, op, gen(2)))
    # image i gets exactly what a batch of one would get under draw i
    params = sample_params(op, gen(2), 16)
    for i in (0, 7, 15):
        assert torch.equal(out[i:i + 1], apply(single, params.rows(slice(i, i + 1))))


@pytest.mark.parametrize("op", VALID_OPS)
def test_every_op_returns_plain_nchw_memory(op: str) -> None:
    # a channels_last result would carry its layout through the network's convolutions
    out = augment(image(4), op, gen(3))
    assert out.is_contiguous() and out.shape == (4, 3, 32, 32)


def test_params_are_cpu_vectors_and_every_op_is_picked() -> None:
    g = gen(0)
    seen = set()
    for _ in range(200):
        p = sample_params(ALL, g, 3)
        seen.add(p.op)
        assert all(v.device.type == "cpu" and v.shape == (3,) for v in p.values.values())
    assert seen == set(VALID_OPS)


def test_repeat_and_rows_expand_per_class_draws_to_images() -> None:
    p = sample_params("scale", gen(5), 3)  # one draw per class, 3 classes
    rows = p.repeat(4)  # 4 images per class, class-major
    assert torch.equal(rows.values["sx"], p.values["sx"].repeat_interleave(4))
    assert torch.equal(rows.rows(slice(4, 8)).values["sx"], p.values["sx"][1].expand(4))
    shared = sample_params("scale", gen(5))
    assert shared.rows(slice(2, 5)).values["sx"].shape == (1,)  # a shared draw stays shared


def test_flip_mirrors_the_images_drawn_below_a_half() -> None:
    x = image(3)
    out = apply(x, AugParams("flip", {"flip": torch.tensor([0.2, 0.9, 0.4])}))
    assert torch.equal(out[0], x[0].flip(-1)) and torch.equal(out[1], x[1]) and torch.equal(out[2], x[2].flip(-1))
    flipped = sample_params("flip", gen(1), 1000).values["flip"] < 0.5
    assert 400 < int(flipped.sum()) < 600


@pytest.mark.parametrize("h,w", [(32, 32), (28, 28)])
def test_crop_shifts_each_image_by_its_drawn_pixels_and_fills_zeros(h: int, w: int) -> None:
    x = image(6, h, w)
    p = sample_params("crop", gen(11), 6)
    out = apply(x, p)
    for i in range(6):
        dx, dy = int(shift_pixels(p.values["dx"][i], w)), int(shift_pixels(p.values["dy"][i], h))
        expected = torch.zeros_like(x[i])
        expected[:, max(dy, 0): h + min(dy, 0), max(dx, 0): w + min(dx, 0)] = \
            x[i, :, max(-dy, 0): h + min(-dy, 0), max(-dx, 0): w + min(-dx, 0)]
        assert torch.equal(out[i], expected)


def test_crop_known_shift() -> None:
    x = image(1)
    out = apply(x, one("crop", dx=CROP, dy=-CROP))
    assert torch.equal(out[..., :-4, 4:], x[..., 4:, :-4])  # right by 4, up by 4
    assert (out[..., :, :4] == 0).all() and (out[..., -4:, :] == 0).all()


def test_cutout_centred_zeros_a_quarter() -> None:
    x = image(2)
    out = apply(x, one("cutout", cx=0.5, cy=0.5))
    zero = out == 0
    assert zero.sum().item() == x.numel() // 4
    assert zero[..., 8:24, 8:24].all()
    assert torch.equal(out[~zero], x[~zero])


def test_cutout_drawn_zeros_a_clipped_square_per_image() -> None:
    x = image(20)
    out = augment(x, "cutout", gen(4))
    regions = set()
    for i in range(20):
        zero = out[i, 0] == 0
        assert torch.equal(zero, (out[i] == 0).all(dim=0))  # same region for every channel
        rows, cols = zero.any(1).nonzero().flatten(), zero.any(0).nonzero().flatten()
        assert 1 <= len(rows) <= 16 and 1 <= len(cols) <= 16
        assert zero.sum() == len(rows) * len(cols)  # a rectangle: the square, clipped at the border
        assert rows[-1] - rows[0] + 1 == len(rows) and cols[-1] - cols[0] + 1 == len(cols)
        assert torch.equal(out[i][:, ~zero], x[i][:, ~zero])
        regions.add((int(rows[0]), int(cols[0])))
    assert len(regions) > 5


def test_color_brightness_and_no_clamping() -> None:
    x = torch.randn(2, 3, 32, 32, generator=gen(2)) * 3  # far outside [0, 1]
    torch.testing.assert_close(apply(x, one("color", brightness=0.3, saturation=1.0, contrast=1.0)), x + 0.3)
    p = sample_params("color", gen(9), 2)
    # saturation and contrast keep the per-image mean, so each moves by exactly its own brightness
    torch.testing.assert_close(apply(x, p).mean(dim=(1, 2, 3)), x.mean(dim=(1, 2, 3)) + p.values["brightness"],
                               atol=1e-5, rtol=0)


def test_color_saturation_zero_gives_grey() -> None:
    x = image(1)
    out = apply(x, one("color", brightness=0.0, saturation=0.0, contrast=1.0))
    torch.testing.assert_close(out, x.mean(dim=1, keepdim=True).expand_as(x))


def test_identity_like_rotate_and_scale() -> None:
    x = image(2, 28, 28)
    torch.testing.assert_close(apply(x, one("rotate", degrees=0.0)), x)
    torch.testing.assert_close(apply(x, one("scale", sx=1.0, sy=1.0)), x)
    half_turn = apply(x, one("rotate", degrees=180.0))
    torch.testing.assert_close(half_turn, x.flip(-1, -2), atol=1e-5, rtol=0)
    per_image = apply(x, AugParams("rotate", {"degrees": torch.tensor([0.0, 180.0])}))
    torch.testing.assert_close(per_image, torch.stack([x[0], x[1].flip(-1, -2)]), atol=1e-5, rtol=0)


@pytest.mark.parametrize("op", VALID_OPS)
def test_gradients_flow(op: str) -> None:
    g = gen(6)
    for _ in range(3):
        x = image(2).requires_grad_(True)
        augment(x, op, g).square().sum().backward()
        assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_parse_strategy() -> None:
    assert parse_strategy("color_crop_cutout_scale_rotate") == ("color", "crop", "cutout", "scale", "rotate")
    assert parse_strategy("none") == () and parse_strategy("") == ()
    with pytest.raises(ValueError, match="blur") as err:
        parse_strategy("color_blur")
    assert "rotate" in str(err.value)  # names the valid ops too
    x = image(2)
    for identity in ("none", ""):
        assert sample_params(identity, gen()).op == "none"
        assert augment(x, identity, gen()) is x


def test_parameter_ranges() -> None:
    scales = torch.cat(list(sample_params("scale", gen(123), 500).values.values()))
    assert scales.min() >= 1 / SCALE and scales.max() <= SCALE and scales.max() - scales.min() > 0.3
    angles = sample_params("rotate", gen(124), 500).values["degrees"]
    assert angles.abs().max() <= 15 and angles.abs().max() > 14
    fractions = sample_params("crop", gen(125), 500).values["dx"]
    assert set(shift_pixels(fractions, 32).tolist()) == set(range(-4, 5))  # every shift within 12.5% of 32
    assert shift_pixels(fractions, 28).abs().max() <= math.ceil(CROP * 28)


@pytest.mark.cuda
def test_runs_on_cuda_like_on_cpu() -> None:
    x = image(4)
    for seed in range(12):
        torch.testing.assert_close(augment(x.cuda(), ALL, gen(seed)).cpu(), augment(x, ALL, gen(seed)),
                                   atol=1e-5, rtol=0)
