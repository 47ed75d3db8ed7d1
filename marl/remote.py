"""An OpenAI-compatible endpoint (chat completions) as an inference-only policy.

The official ``openai`` client does the HTTP work: timeouts and bounded retries with backoff. The key
comes from an environment variable (``OPENAI_API_KEY`` by default; local servers accept any). Token
ids are not returned by such servers; log-probabilities are kept when the server sends them.
"""

from __future__ import annotations

import os

from marl.policy import Completion, write_policy_json


class RemotePolicy:
    backend = "remote"

    def __init__(self, base_url: str | None, model: str | None, api_key_env: str = "OPENAI_API_KEY",
                 timeout: float = 60.0, max_retries: int = 2):
        if not base_url or not model:
            raise ValueError("a remote policy needs base_url and the served model name (remote:MODEL@URL)")
        import openai

        self.base_url, self.model, self.api_key_env = base_url, model, api_key_env
        self._errors = (openai.APIConnectionError, openai.APITimeoutError)
        self.client = openai.OpenAI(base_url=base_url, api_key=os.environ.get(api_key_env) or "unused",
                                    timeout=timeout, max_retries=max_retries)

    def generate(self, prompts, *, max_new_tokens=32, temperature=1.0, top_p=1.0, stop=(), seed=None, infos=None):
        out = []
        for i, prompt in enumerate(prompts):
            try:
                reply = self.client.chat.completions.create(
                    model=self.model, messages=[{"role": "user", "content": prompt}], max_tokens=max_new_tokens,
                    temperature=temperature, top_p=top_p, stop=list(stop) or None,
                    seed=None if seed is None else seed + i,
                )
            except self._errors as e:
                raise RuntimeError(f"cannot reach the endpoint {self.base_url} ({type(e).__name__}): is the server "
                                   "running and the URL right (it usually ends in /v1)?") from None
            choice = reply.choices[0]
            text = choice.message.content or ""
            if choice.finish_reason == "stop" and stop and not any(text.endswith(s) for s in stop):
                text += stop[0]  # servers drop the stop string; Agora's completions keep it
            logprobs = [t.logprob for t in choice.logprobs.content] if choice.logprobs and choice.logprobs.content else []
            out.append(Completion(text, logprobs=logprobs))
        return out

    def score(self, prompts, completions):
        raise TypeError("remote endpoints are inference only: they cannot score completions for training")

    def save(self, directory):
        return write_policy_json(directory, {"backend": self.backend, "name": self.model, "base_url": self.base_url})

    def clone(self) -> RemotePolicy:
        return self
