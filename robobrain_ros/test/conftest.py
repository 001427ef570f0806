# Shared fixtures: `vllm_server` (a real vLLM CPU server with the tiny model, one per session).
pytest_plugins = ['vllm_fixture', 'ros_fixtures']   # robobrain_ros/test/vllm_fixture.py and ros_fixtures.py
