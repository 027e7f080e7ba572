"""Compiling an architecture's packed step in a child process, and loading the result here.

Why: XLA compiles on threads of its own at the process's priority; beside a 200 Hz control loop on
a 2-core machine, a 70-130 ms compile made the loop one to two periods late, and confining those
threads to one core only halved that (docs/BENCHMARKS.md, "Changing the model"). A child process
runs at nice 19, so the scheduler gives the control loop the CPU first; what comes back is the
serialized executable (45 KB for the demo model), loaded here in about 4 ms without holding the
interpreter lock, and it steps as fast as the jitted function (15.6 against 14.7 us). The child
needs the architecture only (hyper and tensor shapes), never the weights. If the child cannot run
or fails, the caller compiles in-process as before.

    python -m liquid_edge_ros_monitor.lnn.compile_apart   # the request as JSON on stdin, the
                                                          # serialized executable on stdout
"""
from __future__ import annotations

import json
import pickle
import subprocess
import sys
from typing import Any, Dict, Mapping, Optional, Tuple

#: Seconds a child may take (importing JAX is most of it, at nice 19 on a busy machine).
CHILD_TIMEOUT_S = 120.0


#: The child's program: nice 19 before anything is imported (importing JAX is most of its work).
_CHILD = ('import os\ntry:\n    os.nice(19)\nexcept OSError:\n    pass\n'
          f'import runpy\nrunpy.run_module({__name__!r}, run_name="__main__")\n')


class CompileApartError(RuntimeError):
    """The child did not give an executable (one line: why)."""


def _request(hyper: Mapping[str, Any], params: Mapping[str, Any], state_size: int,
             n_inputs: int) -> Dict[str, Any]:
    import numpy as np
    return {'hyper': dict(hyper), 'shapes': {k: list(np.shape(v)) for k, v in params.items()},
            'state_size': int(state_size), 'n_inputs': int(n_inputs)}


def compile_apart(hyper: Mapping[str, Any], params: Mapping[str, Any], state_size: int,
                  n_inputs: int, timeout_s: Optional[float] = None) -> Any:
    """The compiled `step(packed, h, x, dt)` of this architecture, compiled by a child process at
    nice 19 and loaded here (`jax.stages.Compiled`). `CompileApartError` when that fails (the
    child gets `timeout_s`, default `CHILD_TIMEOUT_S`)."""
    timeout_s = CHILD_TIMEOUT_S if timeout_s is None else timeout_s
    try:   # experimental in JAX: a JAX without it compiles in-process, as before
        from jax.experimental.serialize_executable import deserialize_and_load
    except ImportError as exc:
        raise CompileApartError(f'this JAX cannot load an executable: {exc}') from None
    request = json.dumps(_request(hyper, params, state_size, n_inputs), default=str).encode()
    try:
        done = subprocess.run([sys.executable, '-c', _CHILD], input=request,
                              capture_output=True, timeout=timeout_s, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CompileApartError(f'compile child: {exc}'.splitlines()[0]) from None
    if done.returncode != 0:
        tail = done.stderr.decode(errors='replace').strip().splitlines()
        raise CompileApartError(f'compile child exited {done.returncode}: '
                                f'{tail[-1] if tail else "no message"}')
    try:
        payload, in_tree, out_tree = pickle.loads(done.stdout)
        return deserialize_and_load(payload, in_tree, out_tree)
    except Exception as exc:  # noqa: BLE001 - any failure to load is one outcome: compile here
        raise CompileApartError(f'loading the compiled step: {exc}'.splitlines()[0]) from None


def compile_request(request: Mapping[str, Any]) -> Tuple[bytes, Any, Any]:
    """The child's work: lower the architecture's packed step on abstract shapes (no weights),
    compile it, serialize it."""
    import jax
    import numpy as np
    from jax.experimental.serialize_executable import serialize

    from .packed import packed_step
    shapes = {k: tuple(v) for k, v in request['shapes'].items()}
    fake = {k: np.zeros(s, np.float32) for k, s in shapes.items()}      # shapes only
    step: Any = packed_step(request['hyper'], fake)    # a jax.jit function: it has .lower
    size = int(sum(int(np.prod(s, dtype=np.int64)) for s in shapes.values()))
    f32 = np.float32
    lowered = step.lower(jax.ShapeDtypeStruct((size,), f32),
                         jax.ShapeDtypeStruct((int(request['state_size']),), f32),
                         jax.ShapeDtypeStruct((int(request['n_inputs']),), f32),
                         jax.ShapeDtypeStruct((), f32))
    return serialize(lowered.compile())


def main() -> int:
    request = json.loads(sys.stdin.buffer.read())
    sys.stdout.buffer.write(pickle.dumps(compile_request(request)))
    sys.stdout.buffer.flush()
    return 0


if __name__ == '__main__':
    sys.exit(main())
