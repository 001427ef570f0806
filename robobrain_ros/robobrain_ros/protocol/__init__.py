"""RoboBrain protocol: prompts, requests, parsing, coordinates, 3D lifting. No ROS imports here."""
