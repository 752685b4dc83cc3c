"""The application layer: what the commands do, built on the library below it.

``run`` trains one mechanism, ``compare`` a table of them, ``add_task`` adds tasks to a trained
model, ``forecast`` runs the forecasting study, ``demo`` the main job; ``build`` turns a config
into data and a model; ``jobs`` runs independent runs in worker processes. Nothing below this
package imports it.
"""
