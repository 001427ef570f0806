"""The ROS layer of the brain: the lifecycle node, its parameters, frame cache, query pipeline and outputs."""
