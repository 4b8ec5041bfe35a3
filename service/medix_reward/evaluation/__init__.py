"""The evaluation protocol (`/evaluate`): grading, prompt templates, judge calibration and the judge check."""
