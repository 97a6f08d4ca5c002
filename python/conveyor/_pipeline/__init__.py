"""conveyor's pipeline: Pipeline, kernel_stage, parallel_pipeline, serve_stage (a Python
program as a stage of a pipeline) and their errors and statistics (see Pipeline's
documentation)."""

from .dropin import parallel_pipeline
from .errors import (PipelineDefinitionError, PipelineError, RankFailed, StageDied, StageFailed,
                     StageProgramError)
from .rank_stats import RankStats, RanksRun
from .pipeline import Pipeline, PipelineRun
from .serve import serve_stage
from .stages import KernelStage, kernel_stage
from .stats import PipelineStats, StageStats

__all__ = ["Pipeline", "PipelineRun", "PipelineStats", "StageStats", "kernel_stage", "KernelStage",
           "parallel_pipeline", "PipelineError", "StageFailed", "StageDied",
           "PipelineDefinitionError", "serve_stage", "StageProgramError", "RankFailed", "RanksRun",
           "RankStats"]
