import pytest
import torch

from src import models


def test_seed_model_has_the_reports_parameter_count():
    assert models.count_params(models.build("seed")) == 4_905_430


@pytest.mark.parametrize("name", sorted(models.REGISTRY))
def test_every_model_maps_a_batch_to_ten_logits(name):
    model = models.build(name).eval()
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("name", sorted(models.REGISTRY))
def test_param_table_adds_up(name):
    table = models.param_table(models.build(name))
    total = table.pop("total")
    assert sum(table.values()) == total == models.count_params(models.build(name))


def test_seed_param_table_has_the_reports_components():
    table = models.param_table(models.build("seed"))
    assert set(table) == {"stem", "residual blocks", "shortcuts", "squeeze-excitation", "head", "total"}
    assert table["stem"] == 3 * 96 * 9 + 2 * 96
    assert table["head"] == 280 * 10 + 10


def test_fast_models_fit_the_limit_and_resnet18_does_not():
    assert models.check_param_limit(models.build("fast"), "fast") < models.PARAM_LIMIT
    assert models.check_param_limit(models.build("fast-wide"), "fast-wide") < models.PARAM_LIMIT
    with pytest.raises(ValueError, match="over the competition's limit"):
        models.check_param_limit(models.build("resnet18"), "resnet18")
    assert models.check_param_limit(models.build("resnet18"), "resnet18", allow_over_limit=True) > 11e6


def test_unknown_model_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown model 'nope'.*seed"):
        models.build("nope")


def test_whitening_init_decorrelates_patches():
    torch.manual_seed(0)
    mix = torch.tensor([[1.0, 0.8, 0.6], [0.0, 0.6, 0.5], [0.0, 0.0, 0.4]])
    images = torch.einsum("dc,nchw->ndhw", mix, torch.randn(256, 3, 16, 16))  # correlated channels
    model = models.build("fast")
    model.init_whitening(images, eps=0.0)
    out = model.whiten(images)[:, :12]  # the first half: the whitening filters themselves
    flat = out.permute(0, 2, 3, 1).reshape(-1, 12)
    cov = torch.cov(flat.T)
    assert torch.allclose(cov, torch.eye(12), atol=0.05)
