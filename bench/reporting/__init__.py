"""The HTML report, built from result files alone (``asv publish`` style).

Data flows one way: ``load`` (result files -> tidy DataFrames) -> ``checks`` (warnings) and ``findings``
(headline numbers, pure functions over DataFrames) -> ``charts`` (matplotlib, inline SVG) ->
``comparison`` (a compare document, when given) -> ``html`` (one self-contained page).
Nothing here imports TensorFlow, Keras or the measuring code.
"""
