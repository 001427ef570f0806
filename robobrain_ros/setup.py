from glob import glob

from setuptools import find_packages, setup

package_name = 'robobrain_ros'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    # The consistency tool's shipped sample set (samples.jsonl and its images) travels with the module.
    package_data={'robobrain_ros.consistency': ['shipped_samples/*.jsonl', 'shipped_samples/images/*.png']},
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        ('share/' + package_name + '/launch', glob('launch/*.launch.py')),
        ('share/' + package_name + '/config', glob('config/*.yaml') + glob('config/*.rviz') + glob('config/*.xml')),
        ('share/' + package_name + '/config/serve', glob('config/serve/*.yaml')),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='robobrain_ros maintainers',
    maintainer_email='maintainers@robobrain-ros.dev',
    description='ROS 2 robot brain on the RoboBrain vision-language model served by vLLM.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'brain_node = robobrain_ros.node.brain_node:main',
            'brain_query = robobrain_ros.brain_client:main',
            'serve = robobrain_ros.serve.cli:main',
            'robobrain-consistency = robobrain_ros.consistency.cli:main',
            'brain_replay = robobrain_ros.replay.cli:main',
        ],
        # vLLM calls every function of this group in each process it starts (API server, engine, workers).
        'vllm.general_plugins': [
            'robobrain_flaggems = robobrain_ros.serve.flaggems_plugin:register',
            'robobrain_seeded_weights = robobrain_ros.serve.seeded_weights:register',
        ],
    },
)
