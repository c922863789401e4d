"""Which rank this process is, under torchrun / accelerate launch (0 of 1 otherwise)."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Ranks:
    rank: int
    world_size: int
    local_rank: int
    state: Any = None  # accelerate.PartialState when world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.state is not None:
            self.state.wait_for_everyone()

    def broadcast(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank."""
        if self.state is None:
            return value
        from accelerate.utils import broadcast_object_list

        return broadcast_object_list([value], from_process=0)[0]


@functools.cache
def ranks() -> Ranks:
    """This process's rank: from accelerate when launched by torchrun / accelerate launch, else 0 of 1."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return Ranks(0, 1, 0)
    import torch
    from accelerate import PartialState

    state = PartialState(cpu=not torch.cuda.is_available())
    return Ranks(state.process_index, state.num_processes, state.local_process_index, state)
