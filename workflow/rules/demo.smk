# Synthetic but physiologically plausible recordings, written in the real on-disk formats so they
# pass through the same readers as real data. Only needed when a dataset points into demo.out_dir.


rule demo:
    output:
        eeg=directory(f"{config['demo']['out_dir']}/eeg"),
        ecg=directory(f"{config['demo']['out_dir']}/ecg"),
        emg=directory(f"{config['demo']['out_dir']}/emg"),
    params:
        cfg=stage_params(("demo",)),
        code=code_version("biospike.demo"),
        out_dir=lambda w, output: str(Path(output.eeg).parent),
    log:
        f"{RESULTS}/logs/demo.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    conda:
        "../envs/biospike.yaml"
    shell:
        "biospike demo --params {params.cfg} --out-dir {params.out_dir} > {log} 2>&1"
