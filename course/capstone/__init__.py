"""The capstone: the learner's own transformer, collected from their notebooks, checked part by
part, assembled and trained.

- :mod:`course.capstone.collect` -- a workspace of exercise notebooks (``make lab`` lays it out
  flat: ``workspace/NN_topic.ipynb``) -> the package ``workspace/mytransformer/``: one module per
  exercise with the code of its graded cells (what the learner wrote, and the given code around
  it), and ``mytransformer/given/`` with the course code the exercises give (input checks, the
  configuration, helpers), in which every name the learner writes is the learner's.
- :mod:`course.capstone.preflight` -- each part the capstone runs passes its exercise's own
  visible checks first; a failure names the exercise and the part.
- :mod:`course.capstone.spy` -- proves that no body of the reference (``solutions/``) runs.
- :mod:`course.capstone.run` -- the GPT built from the learner's classes (``fused=False``: no
  fused twins), trained with their ``fit``/``train_step``/``lr_at``/``param_groups`` to the
  grammar corpus's floor, sampled with their ``generate``.
"""

# The capstone's exercise. The grader's sandbox gets one submitted notebook, not the learner's
# workspace of exercises 1-9 that the capstone collects, so it is checked in the learner's own
# kernel (its test cells) and not graded by `python -m course grade`.
EXERCISE = "11_capstone"
