"""Snakemake adapter: the sample sheet of one of the paper's settings, from its split lists."""
from vidsme.logs import logged
from vidsme.atomic import write_tsv
from vidsme.paper import paper_sheet

with logged(snakemake.log[0]):
    d = snakemake.params.dataset
    sheet = paper_sheet(d["setting"], d["splits_dir"], d["video_root"], d["member_list"],
                        seed=snakemake.params.seed, digests=d["split_digests"])
    write_tsv(sheet, snakemake.output[0])
