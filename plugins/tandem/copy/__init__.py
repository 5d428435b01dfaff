"""Copy engines: ``webhdfs`` streams files in parallel; ``distcp`` runs DistCp on YARN."""
