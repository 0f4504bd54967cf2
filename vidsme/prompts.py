"""The paper's prompts (METHOD section 5), shared by the data generator, training and the paper configs."""

SYSTEM_QA = (
    "Carefully watch this video and pay attention to every detail. Based on your observations, "
    "select the best option that accurately addresses the question."
)
SYSTEM_CAPTION = (
    "Carefully watch this video and pay attention to every detail. Based on your observations, "
    "answer the given questions."
)
CAPTION_INSTRUCTION = "Describe the following video in detail, including the actions and scenes."
QA_TEXT = "Only give the best option."
QA_PREFIX = "Best Option: "
