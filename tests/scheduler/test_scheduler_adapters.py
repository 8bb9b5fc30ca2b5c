"""LoRA adapters through the scheduler: a model differing only by its adapters
gets its own runner, /api/ps lists them, and one that does not fit fails to
load naming the adapter and the model."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

from ggufutil import write_tiny_llama
from lorautil import PROMPT, lora_for_tiny
from pyllama.model_ref import ModelRef
from pyllama.scheduler import ModelLoadError

from schedutil import complete, drain, request, scheduler


def test_adapter_model_gets_its_own_runner(smollm2: ModelRef, lora_path: Path) -> None:
    tuned = dataclasses.replace(smollm2, name="tuned:latest", model="tuned:latest", adapters=(lora_path,))

    async def main() -> None:
        sched = scheduler()
        try:
            base_tokens, _ = await complete(sched, smollm2, PROMPT, 12)
            tuned_tokens, _ = await complete(sched, tuned, PROMPT, 12)
            assert tuned_tokens != base_tokens
            loaded = {m.name: m for m in sched.ps()}
            assert set(loaded) == {"smollm2:latest", "tuned:latest"}
            assert loaded["smollm2:latest"].pid != loaded["tuned:latest"].pid
            assert "adapters" not in loaded["smollm2:latest"].as_dict()
            assert loaded["tuned:latest"].as_dict()["adapters"] == [{"id": 0, "digest": lora_path.name}]
            assert loaded["tuned:latest"].size > loaded["smollm2:latest"].size  # the adapter's bytes count
            # Per request, scale 0 is the base model, without a reload.
            zero, _ = await drain(await sched.generate(tuned, request(PROMPT, 12, lora=[{"id": 0, "scale": 0.0}])))
            assert zero == base_tokens
            assert {m.pid for m in sched.ps()} == {m.pid for m in loaded.values()}
            assert await sched.unload(smollm2)
            assert [m.name for m in sched.ps()] == ["tuned:latest"]
        finally:
            await sched.close()

    asyncio.run(main())


def test_adapter_that_does_not_fit_fails_naming_both(smollm2: ModelRef, tmp_path: Path) -> None:
    foreign = lora_for_tiny(write_tiny_llama(tmp_path / "tiny.gguf"), tmp_path / "tiny-lora.gguf")
    broken = dataclasses.replace(smollm2, adapters=(foreign,))

    async def main() -> None:
        sched = scheduler()
        try:
            with pytest.raises(ModelLoadError) as info:
                await complete(sched, broken, PROMPT, 4)
            message = str(info.value)
            assert f"unable to load LoRA adapter {foreign} for model {smollm2.path}" in message
            assert "shape" in message  # llama.cpp's reason
            assert sched.ps() == []
        finally:
            await sched.close()

    asyncio.run(main())
