import pytest
import torch
from torch import nn

from quicksketch_lib.model import HEAD_KEY, ModelConfig, SketchCNN, build_model


def test_output_shape_and_default_architecture():
    model = SketchCNN(ModelConfig(num_classes=10))
    assert model(torch.zeros(4, 1, 28, 28)).shape == (4, 10)
    convs = [m for m in model.features.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 64, 128, 128, 256, 256]
    assert all(c.kernel_size == (3, 3) for c in convs)
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.features) == 2
    linears = [m for m in model.classifier if isinstance(m, nn.Linear)]
    assert (linears[0].in_features, linears[0].out_features) == (4096, 256)
    assert linears[1].out_features == 10


def test_parameter_count_is_the_documented_one():
    # 37,696 + 221,696 + 885,760 conv blocks; 1,048,832 + 2,570 classifier
    assert SketchCNN(ModelConfig(num_classes=10)).num_parameters() == 2_196_554


def test_convs_per_block_is_configurable():
    one = SketchCNN(ModelConfig(num_classes=5, convs_per_block=1))
    three = SketchCNN(ModelConfig(num_classes=5, convs_per_block=3))
    assert one.num_parameters() < SketchCNN(ModelConfig(num_classes=5)).num_parameters() < three.num_parameters()
    assert three(torch.zeros(1, 1, 28, 28)).shape == (1, 5)


def test_summary_lists_every_stage_with_shapes():
    text = SketchCNN(ModelConfig(num_classes=10)).summary()
    assert "(64, 28, 28)" in text and "(128, 7, 7)" in text and "(256, 4, 4)" in text
    assert "(4096,)" in text and "2,196,554" in text


def test_summary_counts_multiply_adds():
    # block 1: 28*28*64*(1*9 + 64*9); blocks 2 and 3: 14*14*128*(64*9 + 128*9) = 7*7*256*(128*9 + 256*9)
    rows = {line.split("  ")[0]: line.split() for line in SketchCNN(ModelConfig(num_classes=10)).summary().splitlines()}
    assert rows["block1 (2x conv-bn-lrelu)"][-1] == f"{28 * 28 * 64 * 65 * 9:,}" == "29,352,960"
    assert rows["block2 (2x conv-bn-lrelu)"][-1] == rows["block3 (2x conv-bn-lrelu)"][-1] == "43,352,064"
    assert rows["total"][-1] == "117,108,224"  # + 4096*256 + 256*10 in the head


def test_config_round_trips_through_a_dict():
    cfg = ModelConfig(num_classes=7, channels=(32, 64, 128), dropout=0.3)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg


def test_fewer_than_two_classes_is_refused():
    with pytest.raises(ValueError, match="at least 2 classes"):
        SketchCNN(ModelConfig(num_classes=1))


def test_embed_and_head_make_the_forward_pass():
    model = build_model(ModelConfig(channels=(8, 16, 32), hidden=24), ["a", "b", "c"]).eval()
    x = torch.randn(5, 1, 28, 28)
    feats = model.embed(x)
    assert feats.shape == (5, 24) and model.head.out_features == 3
    assert torch.equal(model.head(feats), model(x))
    assert torch.equal(model.state_dict()[f"{HEAD_KEY}.weight"], model.head.weight)


def test_config_refuses_what_no_sketchcnn_can_have():
    assert ModelConfig(channels=[8, 16]).channels == (8, 16)  # sequences become tuples
    for field, value in (("channels", ()), ("channels", (8, -1)), ("hidden", 0), ("dropout", 1.0),
                         ("negative_slope", float("nan")), ("pool_after", (-1,)), ("convs_per_block", 2.5)):
        with pytest.raises(ValueError, match=f"{field}="):
            ModelConfig(**{field: value})
