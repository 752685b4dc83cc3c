"""The application layer: what the commands do, built on the library below it.

``run`` trains one mechanism, ``compare`` a table of them, ``add_task`` adds tasks to a trained
model, ``forecast`` runs the forecasting study, ``predict`` loads a trained run to predict and
evaluate, ``demo`` the main job; ``experiments`` says which runs each ``experiment`` kind;
``build`` turns a config into data and a model; ``jobs`` runs independent runs in worker
processes. Nothing below this package imports it.
"""
