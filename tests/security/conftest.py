"""The torch plugin's digits fixture, for the TorchScript cases."""

from tests.torch.conftest import torch_digits  # noqa: F401 - a fixture
