"""The brain on one machine, without a robot or a real model: a brain node as its own process (brain_process), a
tiny random-weight Qwen2.5-VL (tiny_model) served by vLLM on the CPU (tiny_server), a scripted OpenAI-compatible
server (scripted_server), a camera publisher (camera_publisher) and the Fast DDS shared-memory cleaner
(shm_cleanup). The demo, the benchmarks, the soak and brain_replay's tests run on them; the pytest fixtures built
on them live with the tests (robobrain_ros/test/ros_fixtures.py, vllm_fixture.py), not in the package.

Nothing here imports rclpy, torch or vLLM at import time.
"""
