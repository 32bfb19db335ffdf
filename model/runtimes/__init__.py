"""Running a network (Keras on TensorFlow, LiteRT, scikit-learn); model files recognised and checked."""
