import math

import pytest
import torch

from ddcore.augment import (
    CROP, SCALE, VALID_OPS, AugParams, apply, augment, crop_pixels, parse_strategy, sample_params, siamese,
)

ALL = "_".join(VALID_OPS)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def image(b: int = 1, h: int = 32, w: int = 32, seed: int = 1) -> torch.Tensor:
    """Strictly positive random images, so a zero in the output can only come from the augmentation."""
    return torch.rand(b, 3, h, w, generator=gen(seed)) + 0.5


@pytest.mark.parametrize("op", VALID_OPS)
def test_siamese_identical_rows(op: str) -> None:
    one = image()
    g = gen(3)
    for _ in range(5):
        real, syn = siamese([one.expand(5, -1, -1, -1).clone(), one.expand(2, -1, -1, -1).clone()], op, g)
        assert real.shape == (5, 3, 32, 32) and syn.shape == (2, 3, 32, 32)
        for out in (real, syn):
            assert torch.equal(out, real[:1].expand_as(out))


def test_siamese_shares_one_draw_across_batches() -> None:
    x = image(4, seed=5)
    a, b = siamese([x, x.clone()], ALL, gen(7))
    assert torch.equal(a, b)
    assert torch.equal(a, augment(x, ALL, gen(7)))


def test_deterministic_given_seed() -> None:
    x = image(2, 28, 28)
    for seed in range(10):
        assert torch.equal(augment(x, ALL, gen(seed)), augment(x, ALL, gen(seed)))
    draws = [sample_params(ALL, gen(seed)) for seed in range(10)]
    assert len({(p.op, tuple(float(v) for v in p.values.values())) for p in draws}) > 1


def test_params_are_cpu_scalars_and_every_op_is_picked() -> None:
    g = gen(0)
    seen = set()
    for _ in range(200):
        p = sample_params(ALL, g)
        seen.add(p.op)
        assert all(v.device.type == "cpu" and v.dim() == 0 for v in p.values.values())
    assert seen == set(VALID_OPS)


def test_flip_mirrors() -> None:
    x = image(2)
    assert torch.equal(apply(x, AugParams("flip", {"flip": torch.tensor(True)})), x.flip(-1))
    assert torch.equal(apply(x, AugParams("flip", {"flip": torch.tensor(False)})), x)
    flipped = [bool(sample_params("flip", gen(s)).values["flip"]) for s in range(100)]
    assert 20 < sum(flipped) < 80


@pytest.mark.parametrize("h,w", [(32, 32), (28, 28)])
def test_crop_shifts_by_drawn_pixels_and_fills_zeros(h: int, w: int) -> None:
    x = image(2, h, w)
    g = gen(11)
    for _ in range(20):
        p = sample_params("crop", g)
        dx, dy = crop_pixels(p.values["dx"], w), crop_pixels(p.values["dy"], h)
        expected = torch.zeros_like(x)
        expected[..., max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = \
            x[..., max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)]
        assert torch.equal(apply(x, p), expected)


def test_crop_known_shift() -> None:
    x = image(1)
    out = apply(x, AugParams("crop", {"dx": torch.tensor(CROP), "dy": torch.tensor(-CROP)}))
    assert torch.equal(out[..., :-4, 4:], x[..., 4:, :-4])  # right by 4, up by 4
    assert (out[..., :, :4] == 0).all() and (out[..., -4:, :] == 0).all()


def test_cutout_centred_zeros_a_quarter() -> None:
    x = image(2)
    out = apply(x, AugParams("cutout", {"cx": torch.tensor(0.5), "cy": torch.tensor(0.5)}))
    zero = out == 0
    assert zero.sum().item() == x.numel() // 4
    assert zero[..., 8:24, 8:24].all()
    assert torch.equal(out[~zero], x[~zero])


def test_cutout_drawn_zeros_a_clipped_square() -> None:
    x = image(1)
    g = gen(4)
    for _ in range(20):
        out = augment(x, "cutout", g)
        zero = out[0, 0] == 0
        assert torch.equal(zero, (out == 0).all(dim=(0, 1)))  # same region for every channel
        rows, cols = zero.any(1).nonzero().flatten(), zero.any(0).nonzero().flatten()
        assert 1 <= len(rows) <= 16 and 1 <= len(cols) <= 16
        assert zero.sum() == len(rows) * len(cols)  # a rectangle: the square, clipped at the border
        assert rows[-1] - rows[0] + 1 == len(rows) and cols[-1] - cols[0] + 1 == len(cols)
        assert torch.equal(out[0][:, ~zero], x[0][:, ~zero])


def test_color_brightness_and_no_clamping() -> None:
    x = torch.randn(2, 3, 32, 32, generator=gen(2)) * 3  # far outside [0, 1]
    plain = {"brightness": torch.tensor(0.3), "saturation": torch.tensor(1.0), "contrast": torch.tensor(1.0)}
    torch.testing.assert_close(apply(x, AugParams("color", plain)), x + 0.3)
    g = gen(9)
    for _ in range(10):
        p = sample_params("color", g)
        # saturation and contrast keep the per-image mean, so it moves by exactly the brightness
        torch.testing.assert_close(apply(x, p).mean(dim=(1, 2, 3)), x.mean(dim=(1, 2, 3)) + p.values["brightness"],
                                   atol=1e-5, rtol=0)


def test_color_saturation_zero_gives_grey() -> None:
    x = image(1)
    p = {"brightness": torch.tensor(0.0), "saturation": torch.tensor(0.0), "contrast": torch.tensor(1.0)}
    out = apply(x, AugParams("color", p))
    torch.testing.assert_close(out, x.mean(dim=1, keepdim=True).expand_as(x))


def test_identity_like_rotate_and_scale() -> None:
    x = image(2, 28, 28)
    torch.testing.assert_close(apply(x, AugParams("rotate", {"degrees": torch.tensor(0.0)})), x)
    one = torch.tensor(1.0)
    torch.testing.assert_close(apply(x, AugParams("scale", {"sx": one, "sy": one})), x)
    half_turn = apply(x, AugParams("rotate", {"degrees": torch.tensor(180.0)}))
    torch.testing.assert_close(half_turn, x.flip(-1, -2), atol=1e-5, rtol=0)


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
    g = gen(123)
    scales = torch.stack([torch.stack(list(sample_params("scale", g).values.values())) for _ in range(500)])
    assert scales.min() >= 1 / SCALE and scales.max() <= SCALE and scales.max() - scales.min() > 0.3
    angles = torch.stack([sample_params("rotate", g).values["degrees"] for _ in range(500)])
    assert angles.abs().max() <= 15 and angles.abs().max() > 14
    shifts = {crop_pixels(v, 32) for _ in range(500) for v in sample_params("crop", g).values.values()}
    assert shifts == set(range(-4, 5))  # every integer shift within 12.5% of 32 occurs, nothing beyond
    assert all(abs(s) <= math.ceil(CROP * 28) for _ in range(100)
               for s in (crop_pixels(v, 28) for v in sample_params("crop", g).values.values()))


@pytest.mark.cuda
def test_runs_on_cuda_like_on_cpu() -> None:
    x = image(2)
    for seed in range(12):
        torch.testing.assert_close(augment(x.cuda(), ALL, gen(seed)).cpu(), augment(x, ALL, gen(seed)),
                                   atol=1e-5, rtol=0)
