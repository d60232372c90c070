import torch
import torch.nn.functional as F

from sdflow.flows import InvertibleConv1x1
from sdflow.models import SDFlow, SDFlowConfig
from sdflow.models.init import haar_init_, haar_matrix, set_invconv_weight_


def test_haar_matrix_is_orthonormal_with_averages_first():
    w = haar_matrix(3)
    torch.testing.assert_close(w @ w.T, torch.eye(12, dtype=torch.float64))
    x = torch.arange(16.0).view(1, 1, 4, 4)
    sq = F.pixel_unshuffle(x, 2)[0].reshape(4, -1).double()
    avg = (haar_matrix(1) @ sq)[0]
    torch.testing.assert_close(avg, 2 * F.avg_pool2d(x, 2).flatten().double())


def test_set_invconv_weight_roundtrip():
    layer = InvertibleConv1x1(6)
    target = torch.linalg.qr(torch.randn(6, 6, dtype=torch.float64))[0]
    set_invconv_weight_(layer.double(), target)
    torch.testing.assert_close(layer.weight(), target)


def test_haar_init_makes_content_the_block_mean_and_lr_flow_pointwise():
    m = haar_init_(SDFlow(SDFlowConfig.preset("lite")))
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    z, _ = m.hr_flow.encode_levels(x)
    torch.testing.assert_close(z[:, :3], 4 * F.avg_pool2d(x, 4), atol=1e-5, rtol=0)
    y = torch.rand(2, 3, 8, 8) * 2 - 1
    z_lr, _ = m.lr_flow(y)
    torch.testing.assert_close(z_lr, y, atol=1e-5, rtol=0)  # identity before ActNorm init
