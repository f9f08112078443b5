"""Placement: connecting to Ray, reserving one placement group, and starting the learner ranks and
rollout actors a stage or an evaluation needs (`start_workers`).

It sits above `rft.rollout` and `rft.learner` and below the loops (`rft.trainer`, `rft.eval`),
which both start their actors through it.
"""
