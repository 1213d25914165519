"""The demo's last step: the shipped pretrained model answers drawings made in code (no data, no network)."""

from quicksketch_lib.demo import predict_with_pretrained, sample_drawings
from quicksketch_lib.categories import THE_TEN


def test_pretrained_model_answers_the_sample_drawings(capsys):
    assert set(sample_drawings()) <= set(THE_TEN)
    right = predict_with_pretrained()
    out = capsys.readouterr().out
    assert "PRETRAINED" in out and "95.28% held-out" in out
    assert right == len(sample_drawings()), out
