"""Tests for quicksketch_lib/device.py: the names printed beside a timing."""

from __future__ import annotations

import torch

from quicksketch_lib.device import cpu_name, hardware_name, torch_threads


def test_cpu_name_is_a_model_name_not_empty():
    assert cpu_name().strip()


def test_hardware_name_of_the_cpu_names_the_model_the_vector_extension_and_threads():
    text = hardware_name("cpu")
    assert text.startswith(f"CPU {cpu_name()}")
    assert "AVX-512" in text  # "(AVX-512)" or "(no AVX-512)": what fp32 and bf16 speed depend on
    n = torch.get_num_threads()  # earlier tests may have left it at 1
    assert text.endswith(f", {n} thread" + ("" if n == 1 else "s"))
    with torch_threads(1):
        assert hardware_name("cpu").endswith(", 1 thread")
    with torch_threads(2):
        assert hardware_name("cpu").endswith(", 2 threads")
