// jsdom as the global DOM for React Testing Library; import before @testing-library/react.
import "global-jsdom/register";

globalThis.IS_REACT_ACT_ENVIRONMENT = true;
