"""A plain multi-layer perceptron used by fields and guidance."""

from __future__ import annotations

from jaxtyping import Float
from torch import Tensor, nn

__all__ = ["MLP"]


class MLP(nn.Module):
    """``in -> [hidden -> act] * layers -> out`` with ReLU (or SiLU) activations.

    Args:
        in_dim: input features.
        out_dim: output features.
        hidden_dim: width of the hidden layers.
        hidden_layers: number of hidden layers (0 makes a single linear layer).
        activation: ``"relu"`` or ``"silu"``.
        zero_init_last: start the last layer at zero (the MLP then outputs exactly 0).
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        hidden_dim: int = 64,
        hidden_layers: int = 1,
        activation: str = "relu",
        zero_init_last: bool = False,
    ) -> None:
        super().__init__()
        act = {"relu": nn.ReLU, "silu": nn.SiLU}[activation]
        layers: list[nn.Module] = []
        d = in_dim
        for _ in range(hidden_layers):
            layers += [nn.Linear(d, hidden_dim), act()]
            d = hidden_dim
        last = nn.Linear(d, out_dim)
        if zero_init_last:
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
        layers.append(last)
        self.net = nn.Sequential(*layers)

    def forward(self, x: Float[Tensor, "... C"]) -> Float[Tensor, "... D"]:
        return self.net(x)
