"""Training: dataset manifest, cached I3D features, patient-grouped CV, the paper's recipe, search, reports.

Modules (import as ``semiostream.trainer.<module>``; importing this package is cheap):

* :mod:`.manifest`  -- ``load_manifest(path) -> Manifest`` (CSV; Parquet if pyarrow is installed),
  ``ManifestError`` listing every problem with its row number;
* :mod:`.features`  -- ``FeatureCache``, ``ExtractionSettings``, ``extract_features(...)`` (resumable,
  atomic, parallel decode, failures reported and skipped, crop rule and intensity window per seizure),
  ``load_featureset``;
* :mod:`.dataset`   -- ``FeatureSet`` (windows ``[N, 7, 1024]`` + seizure/patient/label);
* :mod:`.folds`     -- ``make_folds`` (StratifiedGroupKFold by patient and label), fold composition;
* :mod:`.train`     -- ``TrainConfig`` (paper defaults), ``train_model`` (weighted MSE/BCE, Adam, L2,
  best-validation-macro-F1 epoch, deterministic), ``predict``;
* :mod:`.metrics`   -- window and seizure level (mean window p) macro F1/precision/recall, ROC AUC,
  confusion matrix; mean ± std over folds;
* :mod:`.cv`        -- ``cross_validate(data, folds, cfg) -> CVResult``;
* :mod:`.nested`    -- evaluation protocols: ``nested_cross_validate`` (default; selection on inner folds)
  and the paper's (selection on the reported folds, optimistic), ``describe_protocol``;
* :mod:`.search`    -- ``SearchSpace`` (the paper's ranges), ``random_search``;
* :mod:`.report`    -- ``report.json`` / ``predictions.csv`` -> PNG plots + ``summary.md`` (``render``);
* :mod:`.run`       -- ``prepare`` / ``extract`` / ``train_run``: the ``semiostream extract|train`` commands.
"""
