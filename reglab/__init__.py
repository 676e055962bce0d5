"""reglab: the infrastructure behind the course "Regularization in Deep Learning".

It holds what notebooks, tests and the command line share: start-up (seeds, threads,
plot style, a quiet TensorFlow), bundled or generated data, the self-check / record API
used by exercises, the quiz widget, and the release command. It never holds the answer to
an exercise, and the code a chapter teaches stays visible in the chapter.
"""

from reglab.startup import setup

__all__ = ["setup"]
__version__ = "0.1.0"
