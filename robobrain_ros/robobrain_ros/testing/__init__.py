"""Test helpers for robobrain_ros: a tiny random Qwen2.5-VL model and a vLLM server fixture.

Nothing here imports rclpy, torch or vLLM at import time.
"""
