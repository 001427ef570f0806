"""brain_replay: run the brain over a robot's recording (rosbag2) and record what it answers.

A sibling tool of the node, like the consistency tool: it plays a bag's camera topics (and /tf, /clock) to a real
brain node process (one it starts with use_sim_time, or a running one), sends the goals of a goals file at their
times through BrainClient, and records what the node publishes into a new bag with a report. It never reaches into
the node: everything goes through the node's topics, actions and parameters. `--compare A B` puts two replays side
by side with the consistency tool's answer metrics.

Pure modules (no rclpy): exit_codes, goals, params, bag, definitions, topics, schedule, output_bag, report,
compare, sample. The ROS side: convert, player, recorder, session, cli. docs/REPLAY.md has the commands.
"""
