"""core/heap.py: after fix_mmap_threshold(), a large block freed does not make the next one a heap
block (glibc's dynamic threshold, which ratcheted the topic monitor's RSS up in the soak)."""
import subprocess
import sys

import pytest

PROBE = r'''
import ctypes, sys
libc = ctypes.CDLL('libc.so.6')
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]

def mapped(n):
    """Whether glibc served n bytes with mmap (IS_MMAPPED bit of the chunk's size field)."""
    p = libc.malloc(n)
    size = ctypes.c_size_t.from_address(p - ctypes.sizeof(ctypes.c_size_t)).value
    libc.free(p)
    return bool(size & 2)

if sys.argv[1] == 'fixed':
    from liquid_edge_ros_monitor.core.heap import fix_mmap_threshold
    assert fix_mmap_threshold()
print(mapped(4 << 20), mapped(4 << 20))
'''


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='glibc malloc only')
def test_large_blocks_stay_mapped_once_the_threshold_is_fixed():
    def run(mode: str) -> str:
        return subprocess.run([sys.executable, '-c', PROBE, mode], capture_output=True, text=True,
                              check=True, timeout=60).stdout.split()
    assert run('default') == ['True', 'False']    # glibc raised its threshold after the free
    assert run('fixed') == ['True', 'True']      # fixed: mapped, and unmapped on free, each time
