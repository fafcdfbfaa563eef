# Synthetic but physiologically plausible recordings, written in the real on-disk formats so they
# pass through the same readers as real data. Only needed when a dataset points into demo.out_dir.


rule demo:
    output:
        eeg=directory(f"{config['demo']['out_dir']}/eeg"),
        ecg=directory(f"{config['demo']['out_dir']}/ecg"),
        emg=directory(f"{config['demo']['out_dir']}/emg"),
    params:
        cfg=lambda w: rule_params("demo"),
        code=code_version("demo.py"),
    log:
        f"{RESULTS}/logs/demo.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    shell:
        "biospike demo --params {params.cfg} --out-dir {config[demo][out_dir]} > {log} 2>&1"
