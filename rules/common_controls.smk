# Helpers of the controls (`snakemake controls`): the shift experiment's config, the tables' inputs.

SHIFT = EMBEDDED and config["controls"]["shift"]["enabled"]
SHIFT_EXP = f"{EXP}_shift"
SHIFT_RES = f"results/{SHIFT_EXP}"
CONTROL_SLICES = ["", "_answer"] if ANSWER else [""]


def shift_config():
    """This config with experiment {EXP}_shift, the shifted split and the recursion guard off."""
    import copy

    c = copy.deepcopy(config)
    c["experiment"] = SHIFT_EXP
    c["controls"]["shift"]["enabled"] = False
    embedded = c.get("embedded") or {}
    embedded["synth"] = dict(embedded.get("synth") or {}, split="shifted")
    c["embedded"] = embedded
    return c


def controls_outputs():
    if not EMBEDDED:
        raise ValueError(
            "`snakemake controls` needs dataset.kind: embedded (the controls train their own targets)"
        )
    out = [f"{RES}/tables/frame_swap.md"]
    if config["controls"]["variants"]:
        out.append(f"{RES}/tables/positive_control.md")
    if SHIFT:
        out.append(f"{RES}/tables/shift_control.md")
    return out


def control_metrics(models, res=RES):
    """{model key: {slice name: metrics file}} at the main frame count."""
    return {
        m: {SLICES[s]: f"{res}/metrics/{m}/F{F}/metrics{s}.tsv" for s in CONTROL_SLICES}
        for m in models
    }


def positive_control_metrics():
    """{target ("main" or a controls variant): {slice name: metrics file}}."""
    variants = list(config["controls"]["variants"])
    by_model = control_metrics([MODEL] + [f"embedded-{v}" for v in variants])
    return dict(zip(["main"] + variants, by_model.values()))


def positive_control_memorisation():
    targets = ["main"] + list(config["controls"]["variants"])
    return {v: f"{RES}/target/{v}/memorisation.json" for v in targets}


def shift_metrics():
    """{(split, target, slice name): metrics file} of the shift control."""
    out = {}
    for split, res in (("random", RES), ("shifted", SHIFT_RES)):
        for target, model in (("base", "embedded-base"), ("tuned", MODEL)):
            for s in CONTROL_SLICES:
                out[(split, target, SLICES[s])] = (
                    f"{res}/metrics/{model}/F{F}/metrics{s}.tsv"
                )
    return out


def blind_metrics():
    """The blind baseline's metrics of both splits (rules/blind.smk; in every run)."""
    return {
        "random": f"{RES}/blind/metrics.tsv",
        "shifted": f"{SHIFT_RES}/blind/metrics.tsv",
    }
