"""Workflow automation: rules (a trigger, conditions, actions) on the records the apps register.

crm owns the engine; each app registers its records (``register_model``) and its action kinds
(``register_action``: a params validator, an executor, a preview) from its AppConfig.ready.
"""
