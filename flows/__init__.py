"""One module per feature, each the home of its use cases.

The contract every module here keeps:

* ``router``: a :class:`bot.router.Router` with its card verbs (each with its typed payload),
  its commands and its events;
* ``jobs``: a tuple of :class:`scheduler.jobs.Job`, named, idempotent functions of
  (services, at);
* each use case owns its transaction (:func:`flows.base.unit_of_work`): the state change,
  its audit-log rows and the outbox messages that announce it commit together or not at all.

The app factory (``qabot/app.py``) collects every module's router and jobs; adding a feature
means adding a module here and naming it in ``qabot.app.FLOWS``.
"""
