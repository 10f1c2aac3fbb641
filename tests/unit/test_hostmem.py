"""stylebot/hostmem.py: the memory limit read from fake /proc and cgroup trees (real files in a tmp
folder given as the root), and the sizes and workers that fit it."""

from __future__ import annotations

from pathlib import Path

import pytest

from stylebot import hostmem
from stylebot.config import Config
from stylebot.errors import ConfigError

MIB = 1024 * 1024
GIB = 1024 * MIB


def tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def meminfo(total_bytes: int) -> str:
    return f"MemTotal:       {total_bytes // 1024} kB\nMemFree:        1000 kB\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("512M", 512 * MIB), ("1G", GIB), ("1.5GiB", 3 * GIB // 2), ("536870912", 512 * MIB), ("2048mb", 2 * GIB)],
)
def test_parse_size(text: str, expected: int) -> None:
    assert hostmem.parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "lots", "512X", "-1G", "100"])
def test_parse_size_refuses_nonsense(text: str) -> None:
    with pytest.raises(ValueError):
        hostmem.parse_size(text)


def test_cgroup_v2_limit_of_the_process_own_cgroup(tmp_path: Path) -> None:
    root = tree(
        tmp_path,
        {
            "proc/self/cgroup": "0::/system.slice/bot.service\n",
            "proc/meminfo": meminfo(16 * GIB),
            "sys/fs/cgroup/memory.max": "max\n",
            "sys/fs/cgroup/system.slice/memory.max": "max\n",
            "sys/fs/cgroup/system.slice/bot.service/memory.max": f"{512 * MIB}\n",
        },
    )
    limit = hostmem.read_limit(root=root)
    assert limit == hostmem.MemoryLimit(512 * MIB, "cgroup v2 /sys/fs/cgroup/system.slice/bot.service/memory.max")


def test_cgroup_v2_parent_limit_binds(tmp_path: Path) -> None:
    root = tree(
        tmp_path,
        {
            "proc/self/cgroup": "0::/a/b\n",
            "proc/meminfo": meminfo(16 * GIB),
            "sys/fs/cgroup/a/memory.max": f"{GIB}\n",
            "sys/fs/cgroup/a/b/memory.max": "max\n",
        },
    )
    assert hostmem.read_limit(root=root) == hostmem.MemoryLimit(GIB, "cgroup v2 /sys/fs/cgroup/a/memory.max")


def test_cgroup_v1_memory_controller(tmp_path: Path) -> None:
    root = tree(
        tmp_path,
        {
            "proc/self/cgroup": "5:cpu,cpuacct:/docker/abc\n4:memory:/docker/abc\n0::/\n",
            "proc/meminfo": meminfo(16 * GIB),
            "sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n",
            "sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes": f"{768 * MIB}\n",
        },
    )
    limit = hostmem.read_limit(root=root)
    assert limit == hostmem.MemoryLimit(768 * MIB, "cgroup v1 /sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes")


def test_cgroup_v1_container_sees_its_own_cgroup_at_the_mount_root(tmp_path: Path) -> None:
    """/proc/self/cgroup names the host's path, which does not exist inside the container."""
    root = tree(
        tmp_path,
        {
            "proc/self/cgroup": "4:memory:/kubepods/pod1/abc\n",
            "proc/meminfo": meminfo(16 * GIB),
            "sys/fs/cgroup/memory/memory.limit_in_bytes": f"{512 * MIB}\n",
        },
    )
    limit = hostmem.read_limit(root=root)
    assert limit == hostmem.MemoryLimit(512 * MIB, "cgroup v1 /sys/fs/cgroup/memory/memory.limit_in_bytes")


def test_unlimited_cgroups_give_physical_memory(tmp_path: Path) -> None:
    root = tree(
        tmp_path,
        {
            "proc/self/cgroup": "4:memory:/x\n0::/x\n",
            "proc/meminfo": meminfo(8 * GIB),
            "sys/fs/cgroup/memory/x/memory.limit_in_bytes": "9223372036854771712\n",
            "sys/fs/cgroup/unified/x/memory.max": "max\n",
        },
    )
    assert hostmem.read_limit(root=root) == hostmem.MemoryLimit(8 * GIB, "physical memory (/proc/meminfo)")


def test_a_cgroup_limit_above_physical_memory_is_physical(tmp_path: Path) -> None:
    root = tree(
        tmp_path,
        {
            "proc/self/cgroup": "0::/\n",
            "proc/meminfo": meminfo(2 * GIB),
            "sys/fs/cgroup/memory.max": f"{64 * GIB}\n",
        },
    )
    assert hostmem.read_limit(root=root) == hostmem.MemoryLimit(2 * GIB, "physical memory (/proc/meminfo)")


def test_the_override_wins_and_nothing_readable_means_no_limit(tmp_path: Path) -> None:
    root = tree(tmp_path, {"proc/self/cgroup": "0::/\n", "sys/fs/cgroup/memory.max": f"{GIB}\n"})
    assert hostmem.read_limit(512 * MIB, root) == hostmem.MemoryLimit(512 * MIB, "STYLEBOT_MEMORY_LIMIT")
    assert hostmem.read_limit(root=tmp_path / "empty") is None


def test_bf16_from_cpuinfo_flags_and_the_fp32_switch(tmp_path: Path) -> None:
    avx2 = tree(tmp_path / "a", {"proc/cpuinfo": "processor\t: 0\nflags\t\t: fpu sse avx2 fma\n"})
    amx = tree(tmp_path / "b", {"proc/cpuinfo": "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16\n"})
    assert not hostmem.cpu_has_native_bf16(avx2)
    assert hostmem.cpu_has_native_bf16(amx)
    assert not hostmem.cpu_has_native_bf16(amx, bf16_setting="0")


def test_share_follows_the_table_and_grows_with_pixels() -> None:
    for dtype, table in hostmem.SHARE_MIB.items():
        for size, share in table.items():
            assert hostmem.share_mib(size, dtype) == share
        assert hostmem.share_mib(128, dtype) == table[min(table)]
        assert table[512] < hostmem.share_mib(640, dtype) < table[768]
        assert hostmem.share_mib(2048, dtype) > table[max(table)]


def test_512m_keeps_512_as_the_default_and_drops_larger_sizes() -> None:
    """The issue's target: a 512 MB dyno with the CPU wheels and native bf16 paints 512 px, nothing larger.

    Without native bf16 (fp32) a 512 px job in a burst peaked at 513 MiB (DESIGN.md), so 384 px is kept.
    """
    limit = hostmem.MemoryLimit(512 * MIB, "STYLEBOT_MEMORY_LIMIT")
    found = hostmem.fit(limit, 512, None, 1, [512, 768, 1024], "bf16")
    assert (found.image_size, found.max_image_size, found.workers, found.sizes) == (512, 512, 1, (512,))
    assert "largest size 1024 -> 512" in found.describe()
    fp32 = hostmem.fit(limit, 512, None, 1, [512, 768, 1024], "fp32")
    assert (fp32.image_size, fp32.max_image_size, fp32.sizes) == (384, 384, (384,))
    assert "STYLEBOT_IMAGE_SIZE 512 -> 384" in fp32.describe()


def test_workers_are_cut_before_the_default_size() -> None:
    limit = hostmem.MemoryLimit(512 * MIB, "cgroup v2 /sys/fs/cgroup/memory.max")
    found = hostmem.fit(limit, 512, 1024, 4, [512, 768, 1024], "bf16")
    assert (found.workers, found.image_size, found.max_image_size) == (1, 512, 512)
    line = found.describe()
    assert "STYLEBOT_WORKERS 4 -> 1" in line and "STYLEBOT_MAX_IMAGE_SIZE 1024 -> 512" in line
    assert "512 MiB from cgroup v2 /sys/fs/cgroup/memory.max" in line


def test_a_default_that_cannot_fit_comes_down_the_ladder() -> None:
    limit = hostmem.MemoryLimit(450 * MIB, "STYLEBOT_MEMORY_LIMIT")
    found = hostmem.fit(limit, 1024, None, 1, [512, 768, 1024], "bf16")
    assert found.image_size < 512 and found.image_size in hostmem.LADDER
    assert hostmem.fits(450, 1, found.image_size, "bf16")
    assert found.sizes == (found.image_size,)
    assert "STYLEBOT_IMAGE_SIZE 1024 ->" in found.describe()


def test_a_big_host_keeps_everything() -> None:
    limit = hostmem.MemoryLimit(16 * GIB, "physical memory (/proc/meminfo)")
    found = hostmem.fit(limit, 512, None, 2, [512, 768, 1024], "fp32")
    assert (found.image_size, found.workers, found.sizes) == (512, 2, (512, 768, 1024))
    assert "nothing clamped" in found.describe()


def test_config_reads_the_override_and_fits_to_the_host(tmp_path: Path) -> None:
    root = tree(
        tmp_path,
        {
            "proc/self/cgroup": "0::/\n",
            "proc/meminfo": meminfo(16 * GIB),
            "proc/cpuinfo": "flags\t: avx2 avx512_bf16\n",
        },
    )
    env = {"TELEGRAM_BOT_TOKEN": "1:x", "STYLEBOT_MEMORY_LIMIT": "512M", "STYLEBOT_WORKERS": "3"}
    config = Config.from_env(env, dotenv=None)
    assert config.memory_limit == 512 * MIB
    fitted, found = config.fit_to_host(gpu=False, root=root)
    assert (fitted.workers, fitted.image_size, fitted.size_choices(gpu=False)) == (1, 512, [512])
    assert found.dtype == "bf16"
    no_bf16 = Config.from_env({**env, "STYLEBOT_CPU_BF16": "0"}, dotenv=None)
    assert no_bf16.fit_to_host(gpu=False, root=root)[0].size_choices(gpu=False) == [384]
    unset = Config.from_env({"TELEGRAM_BOT_TOKEN": "1:x"}, dotenv=None)
    assert unset.fit_to_host(gpu=False, root=root)[0].size_choices(gpu=False) == [512, 768, 1024]
    on_gpu, _ = config.fit_to_host(gpu=True, root=root)
    assert on_gpu.size_choices(gpu=True) == [512, 768, 1024, 2048]


def test_config_refuses_a_malformed_limit() -> None:
    with pytest.raises(ConfigError, match="STYLEBOT_MEMORY_LIMIT"):
        Config.from_env({"TELEGRAM_BOT_TOKEN": "1:x", "STYLEBOT_MEMORY_LIMIT": "a lot"}, dotenv=None)


def test_a_host_too_small_for_anything_says_so() -> None:
    found = hostmem.fit(
        hostmem.MemoryLimit(300 * MIB, "cgroup v2 /sys/fs/cgroup/memory.max"), 512, None, 2, [512], "fp32"
    )
    assert (found.image_size, found.workers, found.sizes) == (256, 1, (256,))
    assert "even 256 px does not fit" in found.describe()


def test_malloc_arenas_can_be_capped_here() -> None:
    """glibc (this project's Linux images) takes the cap; the bot's processes set it before their threads."""
    assert hostmem.limit_malloc_arenas(hostmem.MALLOC_ARENAS)


def test_the_decode_budget_is_what_the_limit_leaves_beside_the_painting() -> None:
    """512M with bf16 at 512 px: 512 - 263 - 183 = 66 MiB for arrivals; a big host keeps 256; never under 48."""
    small = hostmem.fit(hostmem.MemoryLimit(512 * MIB, "test"), 512, None, 1, [512, 768, 1024], "bf16")
    assert small.decode_bytes() == (512 - hostmem.BASE_MIB - 183) * MIB
    assert "decode budget 66 MiB" in small.describe()
    big = hostmem.fit(hostmem.MemoryLimit(8 * GIB, "test"), 512, None, 1, [512, 768, 1024], "bf16")
    assert big.decode_bytes() == 256 * MIB
    tiny = hostmem.fit(hostmem.MemoryLimit(300 * MIB, "test"), 512, None, 1, [512], "bf16")
    assert tiny.decode_bytes() == hostmem.DECODE_FLOOR_MIB * MIB
    unknown = hostmem.fit(None, 512, None, 1, [512], "bf16")
    assert unknown.decode_bytes() == 256 * MIB
