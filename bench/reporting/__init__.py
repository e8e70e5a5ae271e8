"""The HTML report, built from result files alone (``asv publish`` style).

Data flows one way: ``load`` (result files -> tidy DataFrames) -> ``checks`` (warnings), ``findings``
(headline numbers per backend, pure functions over DataFrames) and ``overhead`` (Keras vs the native loop,
the NVML monitor's own cost) -> ``charts`` (matplotlib, inline SVG) -> ``comparison`` (a compare document,
when given) -> ``html`` (one self-contained page).
Nothing here imports TensorFlow, Keras or the measuring code.
"""
