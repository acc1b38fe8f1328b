"""Recipes: each capability as a config and its steps on the engine, built from the components.

``finetune``, ``distill`` (task and general objectives) and ``cache_teacher`` (:mod:`.distill`),
``prune`` (:mod:`.prune`), ``extract`` (:mod:`.extract`) and ``demo``. A recipe imports only public
names of the engine and the components, never another recipe's internals.
"""
