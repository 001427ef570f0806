"""Does a candidate vLLM server answer RoboBrain questions like a reference? Samples, metrics, table, gate.

A sibling of the node on top of protocol and client (no rclpy). Entry point: cli.main (robobrain-consistency).
"""
