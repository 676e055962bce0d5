"""The course's grader: ``reglab grade SOURCE SUBMISSIONS --out DIR``, one visible part.

The flow for one submission, and the module that does each step::

    SOURCE (solutions/NN.ipynb)           SUBMISSION (a student's notebook)
            |                                       |
            |                     parse, size limit, one row if unreadable   [grade]
            |                                       |
            +----> a clean copy of SOURCE  <---- only its answer cells       [merge]
                   whose checks record, not compare
                            |
                   run isolated: a worker process forks a fresh kernel       [workers]
                   from a warm template, in an empty folder, with its         [run]
                   own environment, memory cap and time limits                [fork]
                            |
                   compare each graded cell's recordings with the            [judge]
                   reference solution's (run the same way, once, cached)
                            |
                   write atomically: results.jsonl (appended per            [grade]
                   submission, so a re-run resumes), grades.csv,
                   feedback/<student>.html

Modules:

- :mod:`reglab.grading.grade`: the command's entry point, the class loop (local threads or
  Dask), resume keys and the output files.
- :mod:`reglab.grading.merge`: which cells are answers and which are graded; building the
  notebook to run from SOURCE and a submission's answers.
- :mod:`reglab.grading.workers`: the long-lived worker processes, replaced when one dies or
  hangs.
- :mod:`reglab.grading.run`: inside a worker, one notebook in one kernel under its limits.
- :mod:`reglab.grading.fork`: the warm kernel template and its forked kernels.
- :mod:`reglab.grading.judge`: recordings against the reference, points and feedback.

The student-facing modules stay outside this package: :mod:`reglab.checks` (the self-checks,
which record instead of compare when ``REGLAB_GRADING=1``), :mod:`reglab.quiz` and
:mod:`reglab.release` (solutions to exercises).
"""
