"""VEE rule sets: their schema (:mod:`.schema`) and where they come from (:mod:`.store`: the packaged
TOML files in ``meter2cash/mdm/vee/rulesets/``, stored versions, the choice per channel)."""
