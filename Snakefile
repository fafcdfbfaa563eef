# biospike: raw EMG/EEG/ECG -> spiking networks, privacy-hardened, attacked, costed on edge hardware.
# Entry point: `snakemake --cores N` runs the embedded demo; see README.md and config/README.md.
from snakemake.utils import min_version

from biospike.config import resolve_data_root, validate_config

min_version("9.0")


configfile: "config/config.yaml"


# The project's validator (schema workflow/schemas/config.schema.yaml, defaults filled): one line
# per problem with the key path and the allowed keys or values.
_validated = resolve_data_root(validate_config(config, source="config"))
config.clear()
config.update(_validated)

# What can be known before any job runs is checked now (files matched, classes vs label_map,
# channel names and rates from cheap headers), so `snakemake -n` fails with ingestion's message.
# Returns the files each dataset matched, which sets ingestion's worker count.
FILES_MATCHED = {}
if workflow.is_main_process:
    from biospike.ingest import preflight_config

    FILES_MATCHED = preflight_config(config, made_under=config["demo"]["out_dir"])


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"


wildcard_constraints:
    dataset="|".join(DATASETS) if DATASETS else "__none__",


include: "workflow/rules/demo.smk"
include: "workflow/rules/ingest.smk"
include: "workflow/rules/encode.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/privacy.smk"
include: "workflow/rules/attack.smk"
include: "workflow/rules/deploy.smk"
include: "workflow/rules/predict.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        all_targets(),
