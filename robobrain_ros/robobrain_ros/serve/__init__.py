"""Start the vLLM server that robobrain_ros talks to (Ascend, CUDA or CPU).

Modules: ``config`` (YAML format + validation), ``command`` (engine_args -> argv),
``platform`` (which vLLM build and interpreter), ``supervisor`` (process lifetime),
``cli`` (the ``serve`` entry point) and ``flaggems_plugin`` (the
``vllm.general_plugins`` entry point that runs inside vLLM). None of them imports rclpy,
torch or vLLM at import time.
"""
